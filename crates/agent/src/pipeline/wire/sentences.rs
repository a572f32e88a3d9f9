//! The LLM's streamed text cut into sentences for TTS, so the first sentence is spoken while
//! the rest is still being generated.
//!
//! [`SentenceSplitter::push`] takes the text deltas as they come (any size, split anywhere);
//! [`SentenceSplitter::next_sentence`] yields each sentence as soon as its end is certain;
//! [`SentenceSplitter::finish`] yields the rest when the reply ends. The sentences do not
//! depend on how the text was split into deltas.
//!
//! # Where a sentence ends
//!
//! - After `.`, `!`, `?`, `…` (or a run of them: `?!`, `...`) and any closing quotes or
//!   brackets after them (`."`, `?)`, `…»`), when whitespace or the end of the reply follows;
//!   after the full-width `。`, `！`, `？` at once (no space follows them in CJK text).
//! - At every line break (list items, headings and paragraphs are spoken one by one).
//! - Not in `3.5`, `10.30` or `example.com` (no whitespace after the point); not after the
//!   abbreviations in [`ABBREVIATIONS`], initials (`J. R. R. Tolkien`, but not `I.`), dotted
//!   letters (`e.g.`, `U.S.`), or a list number at the start of a line (`1. `); not after a
//!   `.`, `...` or `…` followed by a lowercase word (`Well... maybe`).
//! - A run of more than [`MAX_SENTENCE_CHARS`] characters without an end is cut at its last
//!   `,`, `;` or `:`, else its last space, else at the limit, so TTS can start.
//!
//! # Latency and short sentences
//!
//! The first sentence of a reply goes out as soon as it is complete, however short: it is
//! what the caller waits for. A later sentence of fewer than [`MIN_WORDS`] words is held and
//! spoken with the next one (a one-word TTS request sounds clipped, and the sentence before
//! it is still playing, so holding it costs nothing).
//!
//! # Cleaned for speech
//!
//! Markdown the LLM writes despite being told not to is removed: heading `#`s, bullets
//! (`- `, `* `, `+ `, `• `) and quote markers (`> `) at the start, every `*` and backtick,
//! and `_` at the edge of a word (`_this_`, not `snake_case`). Whitespace is collapsed to
//! single spaces; a sentence with no letter or digit left is dropped.

use std::collections::VecDeque;

/// A run without a sentence end longer than this many characters is cut.
pub const MAX_SENTENCE_CHARS: usize = 250;
/// Later sentences with fewer words than this are joined to the next one.
pub const MIN_WORDS: usize = 2;
/// Words ending in `.` that do not end a sentence (compared lowercase).
pub const ABBREVIATIONS: &[&str] =
    &["mr", "mrs", "ms", "dr", "st", "prof", "sr", "jr", "vs", "etc", "approx", "mt", "eg", "ie", "cf"];

/// How far past `...` (or `.`) a lowercase letter is looked for: further whitespace ends
/// the sentence anyway.
const LOOKAHEAD: usize = 8;
/// A cut at a comma leaves at least this many characters on its left (else a space is used).
const MIN_CUT_CHARS: usize = 40;

/// Splits one reply at a time; [`SentenceSplitter::finish`] (or [`SentenceSplitter::clear`])
/// readies it for the next.
#[derive(Debug)]
pub struct SentenceSplitter {
    /// Text not yet emitted; `buf[start..]` is the current sentence and what follows.
    buf: String,
    start: usize,
    /// `buf[start..scan]` holds no sentence end; `scan_chars` characters.
    scan: usize,
    scan_chars: usize,
    /// The current sentence begins a line (a list number can be at its start).
    line_start: bool,
    /// Cleaned sentences ready to go.
    ready: VecDeque<String>,
    /// A short sentence waiting for the next.
    held: Option<String>,
    /// A sentence of this reply went out (the first goes out however short).
    emitted: bool,
    max_chars: usize,
}

impl Default for SentenceSplitter {
    fn default() -> Self {
        SentenceSplitter::new()
    }
}

/// What the text says about a sentence end at a terminator.
enum Verdict {
    End,
    NotEnd,
    NeedMore,
}

impl SentenceSplitter {
    /// A splitter cutting runs at [`MAX_SENTENCE_CHARS`].
    pub fn new() -> SentenceSplitter {
        SentenceSplitter::with_max_chars(MAX_SENTENCE_CHARS)
    }

    /// A splitter cutting runs longer than `max_chars` characters (at least 16).
    pub fn with_max_chars(max_chars: usize) -> SentenceSplitter {
        SentenceSplitter {
            buf: String::new(),
            start: 0,
            scan: 0,
            scan_chars: 0,
            line_start: true,
            ready: VecDeque::new(),
            held: None,
            emitted: false,
            max_chars: max_chars.max(16),
        }
    }

    /// More of the reply's text.
    pub fn push(&mut self, delta: &str) {
        self.buf.push_str(delta);
    }

    /// The next complete sentence, cleaned for speech; `None` until more text comes.
    pub fn next_sentence(&mut self) -> Option<String> {
        if self.ready.is_empty() {
            self.advance(false);
        }
        self.ready.pop_front()
    }

    /// The reply ended: everything not yet returned, as one piece (call
    /// [`SentenceSplitter::next_sentence`] until `None` first to get it sentence by
    /// sentence). The splitter is then ready for the next reply.
    pub fn finish(&mut self) -> Option<String> {
        self.advance(true);
        let rest = self.buf.get(self.start..).unwrap_or_default().to_owned();
        self.emit(&rest, true);
        if let Some(held) = self.held.take() {
            self.ready.push_back(held);
        }
        let pieces: Vec<String> = self.ready.drain(..).collect();
        self.clear();
        (!pieces.is_empty()).then(|| pieces.join(" "))
    }

    /// Drop everything (barge-in: the reply is abandoned) and start over.
    pub fn clear(&mut self) {
        *self = SentenceSplitter::with_max_chars(self.max_chars);
    }

    /// Find every certain sentence end in the buffer; `end` says the text is complete.
    fn advance(&mut self, end: bool) {
        while let Some((at, cut)) = self.find_end(end) {
            let sentence = self.buf.get(self.start..at).unwrap_or_default().to_owned();
            self.line_start = sentence.ends_with(['\n', '\r']);
            self.start = at;
            self.scan = at;
            self.scan_chars = 0;
            self.emit(&sentence, !cut);
        }
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.scan = self.scan.saturating_sub(self.start);
            self.start = 0;
        }
    }

    /// Where the current sentence ends (a byte offset in `buf`), if that is certain yet, and
    /// whether it is a cut rather than a sentence end.
    fn find_end(&mut self, end: bool) -> Option<(usize, bool)> {
        let mut i = self.scan;
        let mut chars = self.scan_chars;
        loop {
            if chars >= self.max_chars {
                return Some((self.cut(), true));
            }
            let Some(c) = self.buf.get(i..).and_then(|t| t.chars().next()) else {
                self.scan = i;
                self.scan_chars = chars;
                return None;
            };
            if c == '\n' || c == '\r' {
                return Some((i + 1, false));
            }
            if !is_terminator(c) {
                i += c.len_utf8();
                chars += 1;
                continue;
            }
            let (after, after_chars, verdict) = self.decide(i, chars, end);
            if after_chars > self.max_chars {
                return Some((self.cut(), true));
            }
            match verdict {
                Verdict::End => return Some((after, false)),
                Verdict::NotEnd => {
                    i = after;
                    chars = after_chars;
                }
                Verdict::NeedMore => {
                    self.scan = i;
                    self.scan_chars = chars;
                    return None;
                }
            }
        }
    }

    /// At terminator `i` (the `chars`-th character of the sentence): where its run and the
    /// closing quotes after it end, that many characters, and whether the sentence ends there.
    fn decide(&self, i: usize, chars: usize, end: bool) -> (usize, usize, Verdict) {
        let text = self.buf.get(i..).unwrap_or_default();
        let mut after = i;
        let mut after_chars = chars;
        let (mut full_width, mut run) = (false, 0);
        let mut rest = text.chars().peekable();
        while let Some(&c) = rest.peek().filter(|c| is_terminator(**c)) {
            full_width |= matches!(c, '。' | '！' | '？' | '｡');
            run += 1;
            after += c.len_utf8();
            after_chars += 1;
            rest.next();
        }
        while let Some(&c) = rest.peek().filter(|c| is_closer(**c)) {
            after += c.len_utf8();
            after_chars += 1;
            rest.next();
        }
        let Some(next) = rest.next() else {
            return (after, after_chars, if end { Verdict::End } else { Verdict::NeedMore });
        };
        if full_width || next == '\n' || next == '\r' {
            return (after, after_chars, Verdict::End);
        }
        if !next.is_whitespace() {
            return (after, after_chars, Verdict::NotEnd);
        }
        // A lone `.` after an abbreviation, an initial or a list number.
        if run == 1 && after == i + 1 && self.abbreviation_before(i) {
            return (after, after_chars, Verdict::NotEnd);
        }
        // A terminator then a lowercase word: the sentence goes on (`Well... maybe`,
        // `(quickly!) and`, an abbreviation voice-ua does not know).
        for (seen, c) in std::iter::once(next).chain(rest).enumerate() {
            if c == '\n' || c == '\r' {
                return (after, after_chars, Verdict::End);
            }
            if !c.is_whitespace() {
                let verdict = if c.is_lowercase() { Verdict::NotEnd } else { Verdict::End };
                return (after, after_chars, verdict);
            }
            if seen + 1 >= LOOKAHEAD {
                return (after, after_chars, Verdict::End);
            }
        }
        (after, after_chars, if end { Verdict::End } else { Verdict::NeedMore })
    }

    /// The word before the `.` at `i` is an abbreviation, an initial, dotted letters or a
    /// list number at the start of a line.
    fn abbreviation_before(&self, i: usize) -> bool {
        let before = self.buf.get(self.start..i).unwrap_or_default();
        let word_start = before
            .char_indices()
            .rev()
            .find(|(_, c)| !(c.is_alphanumeric() || *c == '.'))
            .map_or(0, |(at, c)| at + c.len_utf8());
        let word = before.get(word_start..).unwrap_or_default();
        if word.is_empty() {
            return false;
        }
        let lower = word.to_lowercase();
        if ABBREVIATIONS.contains(&lower.as_str()) {
            return true;
        }
        let mut letters = word.chars();
        if let (Some(c), None) = (letters.next(), letters.next()) {
            // An initial; `I` is more often the end of a sentence.
            if c.is_uppercase() && c != 'I' {
                return true;
            }
        }
        // e.g, i.e, U.S, a.m: single letters between dots.
        if word.contains('.') && word.split('.').all(|part| part.chars().count() == 1) {
            return true;
        }
        // `1.` opening a list line.
        let only_markers =
            |t: &str| t.chars().all(|c| c.is_whitespace() || matches!(c, '-' | '*' | '+' | '#' | '>'));
        self.line_start
            && word.chars().all(|c| c.is_ascii_digit())
            && only_markers(before.get(..word_start).unwrap_or_default())
    }

    /// The current sentence is over the limit: cut at its last `,`/`;`/`:` (keeping it),
    /// else its last whitespace, else at the limit.
    fn cut(&self) -> usize {
        let text = self.buf.get(self.start..).unwrap_or_default();
        let limit = text.char_indices().nth(self.max_chars).map_or(text.len(), |(at, _)| at);
        let head = text.get(..limit).unwrap_or_default();
        let min = head.char_indices().nth(MIN_CUT_CHARS).map_or(head.len(), |(at, _)| at);
        let at = head
            .rfind([',', ';', ':', '，', '；', '：'])
            .filter(|&at| at >= min)
            .map(|at| at + head.get(at..).and_then(|t| t.chars().next()).map_or(1, char::len_utf8))
            .or_else(|| head.rfind(char::is_whitespace).filter(|&at| at > 0))
            .unwrap_or(limit);
        self.start + at
    }

    /// One raw sentence (or a cut piece, which is never held): cleaned, dropped if nothing
    /// is left, held if short.
    fn emit(&mut self, raw: &str, may_hold: bool) {
        let cleaned = clean(raw);
        if !cleaned.chars().any(char::is_alphanumeric) {
            return;
        }
        let text = match self.held.take() {
            Some(held) => format!("{held} {cleaned}"),
            None => cleaned,
        };
        if may_hold && self.emitted && words(&text) < MIN_WORDS {
            self.held = Some(text);
            return;
        }
        self.emitted = true;
        self.ready.push_back(text);
    }
}

fn is_terminator(c: char) -> bool {
    matches!(c, '.' | '!' | '?' | '…' | '。' | '！' | '？' | '｡')
}

fn is_closer(c: char) -> bool {
    matches!(c, '"' | '\'' | '”' | '’' | '»' | '›' | ')' | ']' | '}' | '」' | '』' | '）' | '】' | '*' | '_')
}

/// Words with a letter or digit in them; each Chinese character or kana counts as one
/// (no spaces separate their words).
fn words(text: &str) -> usize {
    text.split_whitespace()
        .map(|w| match w.chars().filter(|c| is_cjk(*c)).count() {
            0 => usize::from(w.chars().any(char::is_alphanumeric)),
            n => n,
        })
        .sum()
}

fn is_cjk(c: char) -> bool {
    matches!(u32::from(c), 0x3040..=0x30FF | 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xF900..=0xFAFF)
}

/// The sentence as TTS should read it (see the module documentation).
fn clean(raw: &str) -> String {
    let mut text = raw.trim();
    loop {
        let before = text.len();
        let hashes = text.trim_start_matches('#');
        if hashes.len() < text.len() && hashes.starts_with(char::is_whitespace) {
            text = hashes;
        }
        for marker in ["- ", "* ", "+ ", "• ", "> ", ">"] {
            if let Some(rest) = text.strip_prefix(marker) {
                text = rest;
            }
        }
        text = text.trim_start();
        if text.len() == before {
            break;
        }
    }
    let mut out = String::with_capacity(text.len());
    let mut previous: Option<char> = None;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        let next = chars.peek().copied();
        let keep = match c {
            '*' | '`' => false,
            '_' => previous.is_some_and(char::is_alphanumeric) && next.is_some_and(char::is_alphanumeric),
            _ => true,
        };
        previous = Some(c);
        if !keep {
            continue;
        }
        if c.is_whitespace() {
            if !out.is_empty() && !out.ends_with(' ') {
                out.push(' ');
            }
        } else {
            out.push(c);
        }
    }
    out.truncate(out.trim_end().len());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Every sentence of `deltas`, draining after each push, then `finish`.
    fn split_deltas<'a>(max: usize, deltas: impl IntoIterator<Item = &'a str>) -> Vec<String> {
        let mut splitter = SentenceSplitter::with_max_chars(max);
        let mut out = Vec::new();
        for delta in deltas {
            splitter.push(delta);
            while let Some(s) = splitter.next_sentence() {
                out.push(s);
            }
        }
        out.extend(splitter.finish());
        out
    }

    fn sentences(text: &str) -> Vec<String> {
        split_deltas(MAX_SENTENCE_CHARS, [text])
    }

    /// `text` in deltas of 1-5 characters, as an LLM streams tokens.
    fn token_deltas(text: &str, seed: usize) -> Vec<&str> {
        let mut out = Vec::new();
        let mut rest = text;
        let mut n = seed;
        while !rest.is_empty() {
            n = n.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            let take = 1 + (n >> 16) % 5;
            let end = rest.char_indices().nth(take).map_or(rest.len(), |(at, _)| at);
            let (delta, tail) = rest.split_at(end);
            out.push(delta);
            rest = tail;
        }
        out
    }

    #[test]
    fn a_reply_in_token_deltas() {
        let text = "Sure! The next bus leaves at 10.30 from stop 3.5, platform B. Dr. Smith will meet you there. Anything else?";
        let expected = vec![
            "Sure!",
            "The next bus leaves at 10.30 from stop 3.5, platform B. Dr. Smith will meet you there.",
            "Anything else?",
        ];
        for seed in 0..20 {
            assert_eq!(split_deltas(MAX_SENTENCE_CHARS, token_deltas(text, seed)), expected, "seed {seed}");
        }
    }

    #[test]
    fn the_first_sentence_is_ready_before_the_reply_ends() {
        let mut splitter = SentenceSplitter::new();
        splitter.push("Hello");
        assert_eq!(splitter.next_sentence(), None);
        splitter.push("! How");
        assert_eq!(splitter.next_sentence().as_deref(), Some("Hello!"), "whitespace after ! decides");
        splitter.push(" can I help");
        assert_eq!(splitter.next_sentence(), None);
        assert_eq!(splitter.finish().as_deref(), Some("How can I help"));
    }

    #[test]
    fn a_terminator_at_the_end_of_a_delta_waits_for_the_next_character() {
        let mut splitter = SentenceSplitter::new();
        splitter.push("It costs 3.");
        assert_eq!(splitter.next_sentence(), None);
        splitter.push("5 euros. Then");
        assert_eq!(splitter.next_sentence().as_deref(), Some("It costs 3.5 euros."));
    }

    #[test]
    fn abbreviations_initials_and_dotted_letters_do_not_end_a_sentence() {
        assert_eq!(
            sentences("Mr. Brown and Mrs. Green met Dr. Who on St. James street, e.g. at noon. Then i.e. later etc. It was fine."),
            vec!["Mr. Brown and Mrs. Green met Dr. Who on St. James street, e.g. at noon.", "Then i.e. later etc. It was fine."]
        );
        assert_eq!(
            sentences("J. R. R. Tolkien wrote it. So did I. Really, it is good."),
            vec!["J. R. R. Tolkien wrote it.", "So did I.", "Really, it is good."]
        );
    }

    #[test]
    fn ellipsis_before_lowercase_continues_before_uppercase_ends() {
        assert_eq!(
            sentences("Well... maybe not. I was thinking... We should go. Hmm… let me see. Stop!? no way."),
            vec![
                "Well... maybe not.",
                "I was thinking...",
                "We should go.",
                "Hmm… let me see.",
                "Stop!? no way."
            ]
        );
    }

    #[test]
    fn closing_quotes_and_brackets_stay_with_their_sentence() {
        assert_eq!(
            sentences("He said \"Stop.\" Then he left (quickly!) and came back. «Ok?» She nodded."),
            vec!["He said \"Stop.\"", "Then he left (quickly!) and came back.", "«Ok?» She nodded."]
        );
    }

    #[test]
    fn line_breaks_split_and_markdown_is_removed() {
        let text = "## Your options\n\n- **Standard** delivery: 3 days\n- *Express* delivery: `1 day`\n1. Call us\n2. Pay\n> Note: snake_case stays, _this_ goes.\n---\n";
        assert_eq!(
            sentences(text),
            vec![
                "Your options",
                "Standard delivery: 3 days",
                "Express delivery: 1 day",
                "1. Call us",
                "2. Pay",
                "Note: snake_case stays, this goes.",
            ]
        );
    }

    #[test]
    fn full_width_terminators_need_no_space() {
        assert_eq!(sentences("你好。我能帮你吗？好的！"), vec!["你好。", "我能帮你吗？", "好的！"]);
    }

    #[test]
    fn later_short_sentences_join_the_next_one() {
        assert_eq!(
            sentences("Okay. Sure. I will book it now. Done. Bye."),
            vec!["Okay.", "Sure. I will book it now.", "Done. Bye."]
        );
    }

    #[test]
    fn a_long_run_is_cut_at_a_comma_then_a_space() {
        let clause = "and then the road goes on past the old mill";
        let text = format!(
            "{clause}, {clause}, {clause}, {clause}, {clause}, {clause}, {clause} {clause} {clause}."
        );
        let got = sentences(&text);
        assert!(got.len() >= 2, "{got:?}");
        assert!(got[0].ends_with(','), "cut after a comma: {:?}", got[0]);
        for s in &got {
            assert!(s.chars().count() <= MAX_SENTENCE_CHARS, "{s:?}");
        }
        let no_commas = "word ".repeat(120);
        let got = sentences(&no_commas);
        assert!(got.iter().all(|s| s.chars().count() <= MAX_SENTENCE_CHARS && !s.ends_with(' ')), "{got:?}");
        assert_eq!(got.join(" "), no_commas.trim());
        let one_word = "x".repeat(600);
        assert_eq!(sentences(&one_word), vec!["x".repeat(250), "x".repeat(250), "x".repeat(100)]);
    }

    #[test]
    fn clear_drops_the_reply_and_finish_resets() {
        let mut splitter = SentenceSplitter::new();
        splitter.push("First one here. Second one");
        assert_eq!(splitter.next_sentence().as_deref(), Some("First one here."));
        splitter.clear();
        assert_eq!(splitter.finish(), None);
        splitter.push("Hi. Yes.");
        assert_eq!(
            splitter.next_sentence().as_deref(),
            Some("Hi."),
            "the first sentence of a new reply is not held"
        );
        assert_eq!(splitter.finish().as_deref(), Some("Yes."));
    }

    fn alphanumerics(text: &str) -> String {
        text.chars().filter(|c| c.is_alphanumeric()).collect()
    }

    /// Text an LLM might write, from pieces that exercise every rule.
    fn llm_text() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            "[A-Za-z]{1,8}",
            "[a-z]{1,8}",
            Just(" ".to_owned()),
            Just("  ".to_owned()),
            Just(". ".to_owned()),
            Just(".".to_owned()),
            Just("...".to_owned()),
            Just("… ".to_owned()),
            Just("! ".to_owned()),
            Just("?".to_owned()),
            Just("\" ".to_owned()),
            Just(")".to_owned()),
            Just(", ".to_owned()),
            Just("\n".to_owned()),
            Just("\r\n".to_owned()),
            Just("3.5".to_owned()),
            Just("Mr. ".to_owned()),
            Just("e.g. ".to_owned()),
            Just("J. ".to_owned()),
            Just("1. ".to_owned()),
            Just("**".to_owned()),
            Just("_".to_owned()),
            Just("`".to_owned()),
            Just("# ".to_owned()),
            Just("- ".to_owned()),
            Just("。".to_owned()),
            Just("Привіт".to_owned()),
        ];
        proptest::collection::vec(piece, 0..80).prop_map(|v| v.concat())
    }

    proptest! {
        #[test]
        fn the_split_does_not_change_the_sentences(
            text in llm_text(),
            seed in any::<usize>(),
            max in prop_oneof![Just(MAX_SENTENCE_CHARS), 16usize..60],
        ) {
            let whole = split_deltas(max, [text.as_str()]);
            let tokens = split_deltas(max, token_deltas(&text, seed));
            let chars: Vec<String> = text.chars().map(String::from).collect();
            let one_by_one = split_deltas(max, chars.iter().map(String::as_str));
            prop_assert_eq!(&whole, &tokens);
            prop_assert_eq!(&whole, &one_by_one);
            // Nothing spoken is lost or invented.
            prop_assert_eq!(alphanumerics(&whole.concat()), alphanumerics(&text));
            for s in &whole {
                prop_assert!(!s.is_empty() && s.trim() == s && !s.contains("  ") && !s.contains('\n'));
                prop_assert!(s.chars().any(char::is_alphanumeric));
                prop_assert!(s.chars().count() <= 2 * max + 1, "{} chars", s.chars().count());
            }
        }

        #[test]
        fn any_text_never_panics(text in any::<String>(), seed in any::<usize>()) {
            let whole = sentences(&text);
            prop_assert_eq!(whole, split_deltas(MAX_SENTENCE_CHARS, token_deltas(&text, seed)));
        }
    }
}
