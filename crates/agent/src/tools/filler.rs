//! No dead air while a function runs, sans-IO: [`Fillers`] keeps the functions the agent
//! is waiting for, each with its [`Filler`], and decides — with the time injected — when
//! the caller hears a phrase ([`FillerAction::Say`]) or the call's hold tone
//! ([`FillerAction::Hold`]). Every provider that runs functions uses it the same way:
//! `started` when a call begins, `finished` when its result is in, `poll_timeout` /
//! `handle_timeout` for the threshold, `stop` when the session ends, and drains
//! `poll_action`.
//!
//! Rules:
//! - A function that answers within its threshold (`after`, default
//!   [`DEFAULT_FILLER_AFTER`]) is never announced.
//! - At the threshold: its phrase, when it has one and the provider can speak one
//!   ([`Fillers::new`]'s `can_speak`), at most one phrase while functions run; otherwise
//!   the hold tone. After a phrase the hold tone follows [`TONE_AFTER_PHRASE`] later if
//!   the result is still not in (the call plays the tone only while no agent audio is
//!   queued, so it never covers the phrase).
//! - One hold for all: `Hold(true)` when the first function reaches its tone,
//!   `Hold(false)` when the last function it waits for is done (or the session ends).
//! - Built-ins never get a filler: a transfer has its own announcement, hang-up and
//!   DTMF answer at once.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::{FunctionSpec, ToolKind};

/// A function slower than this gets its filler, unless configured otherwise.
pub const DEFAULT_FILLER_AFTER: Duration = Duration::from_millis(700);
/// After a phrase, the hold tone starts this much later if the result is still not in.
pub const TONE_AFTER_PHRASE: Duration = Duration::from_millis(2500);
/// The longest filler phrase kept (it is spoken as it is).
pub const MAX_FILLER_PHRASE: usize = 200;

/// What the caller hears while a function runs longer than `after`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filler {
    /// Nothing: the function is announced some other way, or always fast.
    Off,
    /// The call's soft hold tone from `after` until the result.
    Tone {
        /// The threshold.
        after: Duration,
    },
    /// This phrase at `after` (the tone where the provider cannot speak one), then the
    /// tone if the wait goes on.
    Phrase {
        /// The threshold.
        after: Duration,
        /// What the agent says ("One moment, I'm opening the gate.").
        text: String,
    },
}

impl Default for Filler {
    /// The hold tone after [`DEFAULT_FILLER_AFTER`].
    fn default() -> Self {
        Filler::Tone { after: DEFAULT_FILLER_AFTER }
    }
}

impl Filler {
    /// The threshold, when there is a filler.
    pub fn after(&self) -> Option<Duration> {
        match self {
            Filler::Off => None,
            Filler::Tone { after } | Filler::Phrase { after, .. } => Some(*after),
        }
    }
}

/// What the provider must do for the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FillerAction {
    /// Say this phrase (Deepgram `InjectAgentMessage` with behaviour `queue`, the
    /// pipeline's TTS). If the provider refuses it, call [`Fillers::phrase_refused`].
    Say(String),
    /// Send [`crate::AgentEvent::Hold`] with [`crate::HoldReason::Tool`] and this `on`.
    Hold(bool),
}

/// One function being waited for.
#[derive(Debug)]
struct Running {
    id: String,
    filler: Filler,
    /// When its next step is due: the threshold, then (after a phrase) the tone.
    due: Option<Instant>,
    /// It has reached its tone: the hold waits for it.
    holding: bool,
    /// Its phrase was asked for.
    phrased: bool,
}

/// The functions the agent waits for and their fillers. See the module comment.
#[derive(Debug, Default)]
pub struct Fillers {
    /// Each configured function's filler, by name.
    table: Vec<(String, Filler)>,
    can_speak: bool,
    running: Vec<Running>,
    /// A phrase was said for the functions running now.
    phrase_said: bool,
    hold: bool,
    actions: VecDeque<FillerAction>,
}

impl Fillers {
    /// Fillers for `functions` (HTTP functions only: built-ins have none). `can_speak`:
    /// the provider can say a phrase of ours; otherwise phrases become the tone.
    pub fn new(functions: &[FunctionSpec], can_speak: bool) -> Self {
        let table = functions
            .iter()
            .filter(|f| matches!(f.kind, ToolKind::Http { .. }))
            .map(|f| (f.name.clone(), f.filler.clone()))
            .collect();
        Fillers { table, can_speak, ..Fillers::default() }
    }

    /// The function `name` was called at `now` with the provider's `id`. Unknown names
    /// and built-ins get no filler.
    pub fn started(&mut self, now: Instant, id: &str, name: &str) {
        let Some(filler) = self.table.iter().find(|(n, _)| n == name).map(|(_, f)| f.clone()) else {
            return;
        };
        let Some(after) = filler.after() else { return };
        if self.running.iter().any(|r| r.id == id) {
            return;
        }
        self.running.push(Running {
            id: id.to_owned(),
            filler,
            due: Some(now + after),
            holding: false,
            phrased: false,
        });
        // A zero threshold is due at once.
        self.handle_timeout(now);
    }

    /// The result of call `id` is in (or the call was cancelled). Unknown ids are ignored.
    pub fn finished(&mut self, id: &str) {
        let before = self.running.len();
        self.running.retain(|r| r.id != id);
        if self.running.len() == before {
            return;
        }
        if self.running.is_empty() {
            self.phrase_said = false;
        }
        self.update_hold();
    }

    /// The provider would not say the phrase (Deepgram's `InjectionRefused`): the
    /// functions that were announced with it get the tone now.
    pub fn phrase_refused(&mut self, now: Instant) {
        for r in self.running.iter_mut().filter(|r| r.phrased && !r.holding) {
            r.due = Some(now);
        }
        self.handle_timeout(now);
    }

    /// The session is over: the hold ends, nothing more is due.
    pub fn stop(&mut self) {
        self.running.clear();
        self.phrase_said = false;
        self.update_hold();
    }

    /// When [`Fillers::handle_timeout`] is next due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.running.iter().filter_map(|r| r.due).min()
    }

    /// Time has passed: phrases and the tone that are due.
    pub fn handle_timeout(&mut self, now: Instant) {
        for i in 0..self.running.len() {
            let Some(r) = self.running.get_mut(i) else { break };
            if r.due.is_none_or(|d| d > now) {
                continue;
            }
            match &r.filler {
                Filler::Phrase { text, .. } if self.can_speak && !r.holding && !self.phrase_said => {
                    // The phrase now, the tone later if the wait goes on.
                    let text = text.clone();
                    r.due = Some(now + TONE_AFTER_PHRASE);
                    r.filler = Filler::Tone { after: TONE_AFTER_PHRASE };
                    r.phrased = true;
                    self.phrase_said = true;
                    self.actions.push_back(FillerAction::Say(text));
                }
                _ => {
                    r.due = None;
                    r.holding = true;
                }
            }
        }
        self.update_hold();
    }

    /// Functions are running that the caller waits for.
    pub fn waiting(&self) -> bool {
        !self.running.is_empty()
    }

    /// The hold tone is on.
    pub fn holding(&self) -> bool {
        self.hold
    }

    /// The next thing to do, in order.
    pub fn poll_action(&mut self) -> Option<FillerAction> {
        self.actions.pop_front()
    }

    fn update_hold(&mut self) {
        let hold = self.running.iter().any(|r| r.holding);
        if hold != self.hold {
            self.hold = hold;
            self.actions.push_back(FillerAction::Hold(hold));
        }
    }
}
