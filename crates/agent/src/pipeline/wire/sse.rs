//! Server-sent events (WHATWG HTML, "Server-sent events", the `text/event-stream`
//! format), decoded sans-IO: the body's bytes go in as they arrive ([`SseDecoder::push`]),
//! whole events come out ([`SseDecoder::next_event`]).
//!
//! Lines end with `\n`, `\r\n` or `\r`, split anywhere across pushes (a `\r` at the end of
//! one push and the `\n` at the start of the next are one line end; a UTF-8 character may be
//! split too: a line is decoded only once it is complete). A line starting with `:` is a
//! comment (OpenRouter's `: OPENROUTER PROCESSING` keep-alives); `field: value` drops one
//! space after the colon; `data` lines are joined with `\n`; a blank line dispatches the
//! event, unless it had no `data` line. `event` names the event; `id` and `retry` are read
//! and ignored (voice-ua never reconnects a stream). A leading byte-order mark is skipped.
//!
//! Bounds: a line, and an event's data, of more than `max` bytes ([`MAX_SSE_BYTES`] unless
//! set) is an error, so a server that never ends a line cannot grow the buffer without
//! limit as long as the caller drains [`SseDecoder::next_event`] after each push. Text
//! that is not UTF-8 is an error too (the standard replaces it; a chat stream with broken
//! UTF-8 is a broken server). Any error is final: the decoder then yields nothing more.

/// The default bound on one line and on one event's data: 1 MiB.
pub const MAX_SSE_BYTES: usize = 1 << 20;

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event` field, when the event had a non-empty one (`None` is the default
    /// `message` type).
    pub event: Option<String>,
    /// The `data` lines joined with `\n`.
    pub data: String,
}

/// A stream that is not a usable event stream. Any of these ends the decoding.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SseError {
    /// A line longer than the bound (a server that is not sending server-sent events, or
    /// is sending something huge).
    #[error("the event stream has a line of more than {max} bytes: the server is not sending usable server-sent events")]
    LineTooLong {
        /// The bound, in bytes.
        max: usize,
    },
    /// One event's data larger than the bound.
    #[error("the event stream has an event of more than {max} bytes of data")]
    EventTooLarge {
        /// The bound, in bytes.
        max: usize,
    },
    /// A line that is not UTF-8.
    #[error("line {line} of the event stream is not UTF-8 text")]
    InvalidUtf8 {
        /// Which line, counting from 1.
        line: u64,
    },
}

/// Decodes one event stream (one HTTP response body). See the module documentation.
#[derive(Debug)]
pub struct SseDecoder {
    /// Bytes pushed; those before `start` are consumed.
    buf: Vec<u8>,
    start: usize,
    /// `buf[start..scanned]` holds no line end (so a slow-dripping line is scanned once).
    scanned: usize,
    /// The last line ended with `\r`: a `\n` right after it belongs to that line end.
    skip_lf: bool,
    /// The event being built.
    event: EventBuilder,
    max: usize,
    /// [`SseDecoder::finish`] was called: no more bytes come.
    ended: bool,
    /// An error was returned, or the end was reached: nothing more.
    done: bool,
}

/// The fields of the event not yet dispatched.
#[derive(Debug, Default)]
struct EventBuilder {
    event: String,
    data: String,
    has_data: bool,
    /// Lines seen, for [`SseError::InvalidUtf8`] and the byte-order mark.
    lines: u64,
}

impl Default for SseDecoder {
    fn default() -> Self {
        SseDecoder::new()
    }
}

impl SseDecoder {
    /// A decoder bounding lines and events at [`MAX_SSE_BYTES`].
    pub fn new() -> SseDecoder {
        SseDecoder::with_max_bytes(MAX_SSE_BYTES)
    }

    /// A decoder bounding one line, and one event's data, at `max` bytes.
    pub fn with_max_bytes(max: usize) -> SseDecoder {
        SseDecoder {
            buf: Vec::new(),
            start: 0,
            scanned: 0,
            skip_lf: false,
            event: EventBuilder::default(),
            max,
            ended: false,
            done: false,
        }
    }

    /// More of the body. Ignored after [`SseDecoder::finish`] or an error.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.done || self.ended || bytes.is_empty() {
            return;
        }
        // Compact when most of the buffer is consumed: the copy is paid for by the bytes
        // already decoded, so a line dripping in byte by byte stays linear.
        if self.start > 0 && self.start >= self.buf.len() / 2 {
            self.buf.drain(..self.start);
            self.scanned = self.scanned.saturating_sub(self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// The body ended: [`SseDecoder::next_event`] then yields the events still buffered and
    /// dispatches the last one even without its blank line (some servers close right after
    /// `data: [DONE]\n`). An unterminated last line is dropped, as the standard says.
    pub fn finish(&mut self) {
        self.ended = true;
    }

    /// The next complete event, an error (after which there is nothing more), or `None`
    /// until more bytes are pushed.
    pub fn next_event(&mut self) -> Option<Result<SseEvent, SseError>> {
        while !self.done {
            if self.skip_lf && self.start < self.buf.len() {
                if self.buf.get(self.start) == Some(&b'\n') {
                    self.start += 1;
                }
                self.skip_lf = false;
            }
            let from = self.scanned.max(self.start);
            let tail = self.buf.get(from..).unwrap_or_default();
            let Some(offset) = tail.iter().position(|&b| b == b'\n' || b == b'\r') else {
                self.scanned = self.buf.len();
                if self.buf.len() - self.start > self.max {
                    return Some(Err(self.fail(SseError::LineTooLong { max: self.max })));
                }
                if !self.ended {
                    return None;
                }
                // The end: the unterminated line is dropped, the pending event dispatched.
                let last = self.event.dispatch();
                self.fail_quietly();
                return last.map(Ok);
            };
            let end = from + offset;
            let line_start = self.start;
            self.skip_lf = self.buf.get(end) == Some(&b'\r');
            self.start = end + 1;
            self.scanned = self.start;
            if end - line_start > self.max {
                return Some(Err(self.fail(SseError::LineTooLong { max: self.max })));
            }
            let line = self.buf.get(line_start..end).unwrap_or_default();
            match self.event.line(line, self.max) {
                Ok(None) => {}
                Ok(Some(event)) => return Some(Ok(event)),
                Err(e) => return Some(Err(self.fail(e))),
            }
        }
        None
    }

    /// Stop for good and free the buffers.
    fn fail(&mut self, error: SseError) -> SseError {
        self.fail_quietly();
        error
    }

    fn fail_quietly(&mut self) {
        self.done = true;
        self.buf = Vec::new();
        self.start = 0;
        self.scanned = 0;
        self.event = EventBuilder::default();
    }
}

impl EventBuilder {
    /// One complete line (without its line end): an event when it is the blank line that
    /// dispatches one.
    fn line(&mut self, line: &[u8], max: usize) -> Result<Option<SseEvent>, SseError> {
        self.lines += 1;
        let line = match line {
            [0xEF, 0xBB, 0xBF, rest @ ..] if self.lines == 1 => rest,
            _ => line,
        };
        let line = std::str::from_utf8(line).map_err(|_| SseError::InvalidUtf8 { line: self.lines })?;
        if line.is_empty() {
            return Ok(self.dispatch());
        }
        if line.starts_with(':') {
            return Ok(None);
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line, ""),
        };
        match field {
            "data" => {
                let added = value.len() + usize::from(self.has_data);
                if self.data.len() + added > max {
                    return Err(SseError::EventTooLarge { max });
                }
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            "event" => {
                self.event.clear();
                self.event.push_str(value);
            }
            // `id`, `retry` and unknown fields: nothing voice-ua uses.
            _ => {}
        }
        Ok(None)
    }

    /// The blank line: the event, if it had data; the buffers start over either way.
    fn dispatch(&mut self) -> Option<SseEvent> {
        let event = std::mem::take(&mut self.event);
        if !std::mem::take(&mut self.has_data) {
            return None;
        }
        let data = std::mem::take(&mut self.data);
        Some(SseEvent { event: (!event.is_empty()).then_some(event), data })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn event(name: Option<&str>, data: &str) -> Result<SseEvent, SseError> {
        Ok(SseEvent { event: name.map(str::to_owned), data: data.to_owned() })
    }

    /// Everything `chunks` decode to, `finish` included.
    fn decode_chunks<'a>(
        max: usize,
        chunks: impl IntoIterator<Item = &'a [u8]>,
    ) -> Vec<Result<SseEvent, SseError>> {
        let mut decoder = SseDecoder::with_max_bytes(max);
        let mut out = Vec::new();
        for chunk in chunks {
            decoder.push(chunk);
            while let Some(e) = decoder.next_event() {
                out.push(e);
            }
        }
        decoder.finish();
        while let Some(e) = decoder.next_event() {
            out.push(e);
        }
        out
    }

    fn decode(input: &[u8]) -> Vec<Result<SseEvent, SseError>> {
        decode_chunks(MAX_SSE_BYTES, [input])
    }

    #[test]
    fn openai_chunks_and_done() {
        let body = b"data: {\"a\":1}\n\ndata: {\"a\":2}\n\ndata: [DONE]\n\n";
        assert_eq!(
            decode(body),
            vec![event(None, "{\"a\":1}"), event(None, "{\"a\":2}"), event(None, "[DONE]")]
        );
    }

    #[test]
    fn all_three_line_ends_and_comments() {
        let body =
            b": OPENROUTER PROCESSING\r\n\r\ndata: one\r\rdata: two\n\n:keep-alive\ndata:three\r\n\r\n";
        assert_eq!(decode(body), vec![event(None, "one"), event(None, "two"), event(None, "three")]);
    }

    #[test]
    fn multi_line_data_event_name_and_one_space_dropped() {
        let body = b"event: error\ndata:  indented\ndata\ndata: last\nid: 7\nretry: 100\n\n";
        assert_eq!(decode(body), vec![event(Some("error"), " indented\n\nlast")]);
    }

    #[test]
    fn an_event_without_data_is_not_dispatched_and_its_name_is_forgotten() {
        let body = b"event: ping\n\ndata: x\n\n";
        assert_eq!(decode(body), vec![event(None, "x")]);
    }

    #[test]
    fn empty_data_line_is_an_event_with_empty_data() {
        assert_eq!(decode(b"data:\n\n"), vec![event(None, "")]);
    }

    #[test]
    fn cr_then_lf_in_the_next_push_is_one_line_end() {
        let got = decode_chunks(MAX_SSE_BYTES, [&b"data: a\r"[..], b"\n", b"\r", b"\ndata: b\r\n\r\n"]);
        assert_eq!(got, vec![event(None, "a"), event(None, "b")]);
    }

    #[test]
    fn a_character_split_across_pushes() {
        let text = "data: Привіт 👋\n\n".as_bytes();
        let got = decode_chunks(MAX_SSE_BYTES, text.chunks(1));
        assert_eq!(got, vec![event(None, "Привіт 👋")]);
    }

    #[test]
    fn byte_order_mark_is_skipped_once() {
        assert_eq!(decode(b"\xEF\xBB\xBFdata: x\n\n"), vec![event(None, "x")]);
    }

    #[test]
    fn invalid_utf8_is_an_error_and_final() {
        let got = decode(b"data: ok\n\ndata: \xff\xfe\n\ndata: later\n\n");
        assert_eq!(got, vec![event(None, "ok"), Err(SseError::InvalidUtf8 { line: 3 })]);
    }

    #[test]
    fn a_line_over_the_bound_is_an_error_even_before_it_ends() {
        let mut decoder = SseDecoder::with_max_bytes(16);
        decoder.push(b"data: 0123456789");
        assert_eq!(decoder.next_event(), None, "16 bytes: still within the bound");
        decoder.push(b"a");
        assert_eq!(decoder.next_event(), Some(Err(SseError::LineTooLong { max: 16 })));
        decoder.push(b"\n\ndata: x\n\n");
        assert_eq!(decoder.next_event(), None, "an error is final");
        assert!(decoder.buf.capacity() == 0, "the buffer is freed");
    }

    #[test]
    fn an_event_over_the_bound_is_an_error() {
        // Each line fits in 12 bytes; the two values joined do not.
        let got = decode_chunks(12, [&b"data: 123456\ndata: 123456\n\n"[..]]);
        assert_eq!(got, vec![Err(SseError::EventTooLarge { max: 12 })]);
    }

    #[test]
    fn finish_dispatches_the_last_event_without_its_blank_line() {
        assert_eq!(decode(b"data: a\n\ndata: [DONE]\n"), vec![event(None, "a"), event(None, "[DONE]")]);
        // An unterminated line is dropped.
        assert_eq!(decode(b"data: a\n\ndata: [DO"), vec![event(None, "a")]);
    }

    #[test]
    fn byte_by_byte_stays_linear() {
        // 200 kB in one-byte pushes: quadratic rescanning or copying would take minutes.
        let mut decoder = SseDecoder::new();
        let line = vec![b'x'; 200_000];
        decoder.push(b"data: ");
        for b in &line {
            decoder.push(std::slice::from_ref(b));
            assert_eq!(decoder.next_event(), None);
        }
        decoder.push(b"\n\n");
        let got = decoder.next_event().expect("an event").expect("valid");
        assert_eq!(got.data.len(), line.len());
    }

    /// A random split of `input` into pieces.
    fn split<'a>(input: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
        let mut points: Vec<usize> = cuts.iter().map(|c| c % (input.len() + 1)).collect();
        points.sort_unstable();
        let mut pieces = Vec::new();
        let mut at = 0;
        for p in points {
            pieces.push(input.get(at..p).unwrap_or_default());
            at = p;
        }
        pieces.push(input.get(at..).unwrap_or_default());
        pieces
    }

    /// Bytes that look like an event stream often enough to reach every branch.
    fn sse_like() -> impl Strategy<Value = Vec<u8>> {
        let piece = prop_oneof![
            Just(b"data: ".to_vec()),
            Just(b"data:".to_vec()),
            Just(b"event: e".to_vec()),
            Just(b": c".to_vec()),
            Just(b"\n".to_vec()),
            Just(b"\r".to_vec()),
            Just(b"\r\n".to_vec()),
            Just("é€😀".as_bytes().to_vec()),
            Just(vec![0xff]),
            Just(vec![0xEF, 0xBB, 0xBF]),
            "[a-z {}\":]{0,8}".prop_map(String::into_bytes),
            proptest::collection::vec(any::<u8>(), 0..8),
        ];
        proptest::collection::vec(piece, 0..40).prop_map(|v| v.concat())
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic_and_split_does_not_matter(
            input in prop_oneof![proptest::collection::vec(any::<u8>(), 0..400), sse_like()],
            cuts in proptest::collection::vec(any::<usize>(), 0..12),
            max in prop_oneof![Just(MAX_SSE_BYTES), 4usize..40],
        ) {
            let whole = decode_chunks(max, [&input[..]]);
            let pieces = decode_chunks(max, split(&input, &cuts));
            let bytes = decode_chunks(max, input.chunks(1));
            prop_assert_eq!(&whole, &pieces);
            prop_assert_eq!(&whole, &bytes);
            // At most one error, and it is last.
            let errors = whole.iter().filter(|r| r.is_err()).count();
            prop_assert!(errors <= 1);
            if errors == 1 {
                prop_assert!(whole.last().is_some_and(|r| r.is_err()));
            }
            for e in whole.iter().flatten() {
                prop_assert!(e.data.len() <= max);
            }
        }

        #[test]
        fn encoded_events_decode_to_themselves(
            events in proptest::collection::vec(
                (proptest::option::of("[a-z]{1,6}"), proptest::collection::vec("[^\r\n]{0,12}", 1..4)),
                0..6,
            ),
            ends in proptest::collection::vec(prop_oneof![Just("\n"), Just("\r"), Just("\r\n")], 1..8),
            cuts in proptest::collection::vec(any::<usize>(), 0..12),
        ) {
            let mut body = String::new();
            let mut expected = Vec::new();
            let mut n = 0;
            let mut previous = "";
            // A `\r` followed by a `\n` would be one line end, not two.
            let mut end = || {
                n += 1;
                let mut next = ends[n % ends.len()];
                if previous == "\r" && next == "\n" {
                    next = "\r\n";
                }
                previous = next;
                next
            };
            for (name, lines) in &events {
                if let Some(name) = name {
                    body.push_str(&format!("event: {name}{}", end()));
                }
                for line in lines {
                    body.push_str(&format!("data: {line}{}", end()));
                }
                body.push_str(end());
                expected.push(event(name.as_deref(), &lines.join("\n")));
            }
            prop_assert_eq!(decode_chunks(MAX_SSE_BYTES, split(body.as_bytes(), &cuts)), expected);
        }
    }
}
