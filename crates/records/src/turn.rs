//! One turn of a call's conversation in the record: how long the caller waited for the
//! agent's reply, and where the agent says that time went ([`TurnStage`]); the bound on
//! how many turns a call keeps ([`MAX_TURNS`]).

use crate::time::ser;
use serde::Serialize;
use std::time::SystemTime;

/// Turns kept per call: a day-long call must not grow its record (and the call's memory)
/// without limit. The turns after these are counted in
/// [`CallRecord::turns_dropped`](crate::CallRecord::turns_dropped), not kept.
pub const MAX_TURNS: usize = 500;

/// One turn: from the caller's end of speech to the first RTP packet of the agent's
/// reply, as the call measured it, beside the agent's own account of its stages. A stage
/// the agent did not report is `None` (Deepgram reports think and speak, the pipeline
/// all four, echo none).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct TurnFigures {
    /// The turn's number in the call, from 0.
    pub index: u32,
    /// When the reply's first packet left.
    #[serde(serialize_with = "ser::time")]
    pub at: SystemTime,
    /// The caller's end of speech (as received) to the reply's first RTP packet.
    pub latency_ms: u64,
    /// The caller's last speech to the end of the turn being decided.
    pub endpointing_ms: Option<u64>,
    /// Speech to text: the utterance sent to its transcript back.
    pub transcribe_ms: Option<u64>,
    /// To the LLM's first token.
    pub think_ms: Option<u64>,
    /// The text sent to TTS to its first audio byte.
    pub speak_ms: Option<u64>,
    /// The end of speech to the reply's first audio, as the agent counts it.
    pub agent_total_ms: Option<u64>,
}

impl TurnFigures {
    /// The stage's figure, when the agent reported it.
    pub fn stage_ms(&self, stage: TurnStage) -> Option<u64> {
        match stage {
            TurnStage::Endpointing => self.endpointing_ms,
            TurnStage::Transcribe => self.transcribe_ms,
            TurnStage::Think => self.think_ms,
            TurnStage::Speak => self.speak_ms,
        }
    }
}

/// Where a turn's time goes, in order: the record's `<stage>_ms` figures, the `stage`
/// label of `voice_ua_agent_turn_stage_seconds`, and the columns of `voice-ua calls`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TurnStage {
    /// The caller's last speech to the end of the turn being decided.
    Endpointing,
    /// Speech to text.
    Transcribe,
    /// The LLM's first token.
    Think,
    /// Text to speech: the first audio byte.
    Speak,
}

impl TurnStage {
    /// Every stage, in the order a turn runs through them.
    pub const ALL: [TurnStage; 4] =
        [TurnStage::Endpointing, TurnStage::Transcribe, TurnStage::Think, TurnStage::Speak];

    /// The stage's word: `endpointing`, `transcribe`, `think`, `speak`.
    pub fn as_str(self) -> &'static str {
        match self {
            TurnStage::Endpointing => "endpointing",
            TurnStage::Transcribe => "transcribe",
            TurnStage::Think => "think",
            TurnStage::Speak => "speak",
        }
    }
}

impl std::fmt::Display for TurnStage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The median of the turns' latencies (the lower one of the middle two for an even
/// count), in milliseconds; `None` without turns.
pub fn median_latency_ms(turns: &[TurnFigures]) -> Option<u64> {
    let mut v: Vec<u64> = turns.iter().map(|t| t.latency_ms).collect();
    v.sort_unstable();
    v.get(v.len().checked_sub(1)? / 2).copied()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    fn turn(index: u32, latency_ms: u64) -> TurnFigures {
        TurnFigures {
            index,
            at: UNIX_EPOCH,
            latency_ms,
            endpointing_ms: Some(600),
            transcribe_ms: None,
            think_ms: Some(70),
            speak_ms: Some(40),
            agent_total_ms: None,
        }
    }

    #[test]
    fn the_median_is_the_middle_latency_or_the_lower_of_the_middle_two() {
        assert_eq!(median_latency_ms(&[]), None);
        assert_eq!(median_latency_ms(&[turn(0, 820)]), Some(820));
        assert_eq!(median_latency_ms(&[turn(0, 900), turn(1, 300), turn(2, 500)]), Some(500));
        assert_eq!(median_latency_ms(&[turn(0, 900), turn(1, 300), turn(2, 500), turn(3, 700)]), Some(500));
    }

    #[test]
    fn stages_read_their_own_figure_and_have_their_words() {
        let t = turn(0, 820);
        let got: Vec<_> = TurnStage::ALL.iter().map(|s| (s.as_str(), t.stage_ms(*s))).collect();
        assert_eq!(
            got,
            [("endpointing", Some(600)), ("transcribe", None), ("think", Some(70)), ("speak", Some(40))]
        );
        assert_eq!(TurnStage::Think.to_string(), "think");
    }
}
