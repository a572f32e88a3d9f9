//! An utterance as an upload: a PCM16 WAV file ([`wav_pcm16`]) in a `multipart/form-data`
//! body ([`multipart_form`], RFC 7578) for `POST /v1/audio/transcriptions`.
//!
//! The multipart boundary comes from 16 bytes the caller draws (the operating system's
//! random source; nothing here reads one) and is checked against every value and the file:
//! if it occurs in them, another is derived, so a body can never be cut short by its own
//! data. Everything that goes into a part's header (field names, the file name, its content
//! type) is checked for line breaks and quotes, so a value cannot add a header. Values are
//! part bodies, where line breaks are harmless (a multi-line prompt stays one value).

/// Bytes of a canonical WAV header (RIFF, `fmt ` of 16 bytes, `data`).
pub const WAV_HEADER_BYTES: usize = 44;
/// The most samples a WAV's 32-bit sizes can describe; more are not written.
pub const MAX_WAV_SAMPLES: usize = (u32::MAX as usize - (WAV_HEADER_BYTES - 8)) / 2;

/// 16-bit mono PCM at `rate` Hz as a WAV file.
pub fn wav_pcm16(samples: &[i16], rate: u32) -> Vec<u8> {
    let mut out = Vec::new();
    write_wav_pcm16(&mut out, samples, rate);
    out
}

/// [`wav_pcm16`] into `out` (cleared first, so one buffer serves every utterance).
/// Samples past [`MAX_WAV_SAMPLES`] are dropped (over 37 hours at 16 kHz).
pub fn write_wav_pcm16(out: &mut Vec<u8>, samples: &[i16], rate: u32) {
    let samples = samples.get(..MAX_WAV_SAMPLES).unwrap_or(samples);
    // Both fit: the samples are bounded above.
    let data_bytes = u32::try_from(samples.len() * 2).unwrap_or(u32::MAX);
    let riff_bytes = data_bytes.saturating_add(36);
    out.clear();
    out.reserve(WAV_HEADER_BYTES + samples.len() * 2);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&riff_bytes.to_le_bytes());
    out.extend_from_slice(b"WAVE");
    out.extend_from_slice(b"fmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes()); // PCM
    out.extend_from_slice(&1u16.to_le_bytes()); // mono
    out.extend_from_slice(&rate.to_le_bytes());
    out.extend_from_slice(&rate.saturating_mul(2).to_le_bytes()); // bytes per second
    out.extend_from_slice(&2u16.to_le_bytes()); // bytes per frame
    out.extend_from_slice(&16u16.to_le_bytes()); // bits per sample
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_bytes.to_le_bytes());
    for sample in samples {
        out.extend_from_slice(&sample.to_le_bytes());
    }
}

/// The file part of a form.
#[derive(Debug, Clone, Copy)]
pub struct FilePart<'a> {
    /// The field (`file`).
    pub field: &'a str,
    /// The file name the server sees (`utterance.wav`; some servers pick the decoder by
    /// its extension).
    pub filename: &'a str,
    /// Its content type (`audio/wav`).
    pub content_type: &'a str,
    /// The file.
    pub data: &'a [u8],
}

/// A form that cannot be written safely.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MultipartError {
    /// A field name, file name or content type with a character that would break its
    /// header line.
    #[error(
        "the upload's {what} {value:?} contains a line break, quote or control character: use plain text"
    )]
    UnsafeHeader {
        /// `field name`, `file name` or `content type`.
        what: &'static str,
        /// The value, at most 64 bytes of it.
        value: String,
    },
    /// No boundary absent from the data was found (not seen in practice: the data would
    /// have to contain each candidate).
    #[error("no multipart boundary absent from the upload was found")]
    NoBoundary,
}

/// The `multipart/form-data` body of `fields` (name, value) and `file`, with its
/// `Content-Type` header value: `(content_type, body)`. `seed` is 16 random bytes, drawn
/// per body.
pub fn multipart_form(
    seed: [u8; 16],
    fields: &[(&str, &str)],
    file: &FilePart<'_>,
) -> Result<(String, Vec<u8>), MultipartError> {
    for (name, _) in fields {
        check_header("field name", name)?;
    }
    check_header("field name", file.field)?;
    check_header("file name", file.filename)?;
    check_header("content type", file.content_type)?;
    let boundary = boundary(seed, fields, file.data)?;
    let mut body = Vec::with_capacity(file.data.len() + 256 * (fields.len() + 1));
    for (name, value) in fields {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        body.extend_from_slice(format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes());
        body.extend_from_slice(value.as_bytes());
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
    body.extend_from_slice(
        format!(
            "Content-Disposition: form-data; name=\"{}\"; filename=\"{}\"\r\nContent-Type: {}\r\n\r\n",
            file.field, file.filename, file.content_type
        )
        .as_bytes(),
    );
    body.extend_from_slice(file.data);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    Ok((format!("multipart/form-data; boundary={boundary}"), body))
}

/// Header text must stay on its line and inside its quotes.
fn check_header(what: &'static str, value: &str) -> Result<(), MultipartError> {
    if value.is_empty() || value.chars().any(|c| c.is_control() || c == '"' || c == '\\') {
        return Err(MultipartError::UnsafeHeader {
            what,
            value: crate::tools::http::clip(value, 64).to_owned(),
        });
    }
    Ok(())
}

/// `voice-ua-` and 32 hex digits of `seed`, then a counter if that occurs in the data.
fn boundary(seed: [u8; 16], fields: &[(&str, &str)], data: &[u8]) -> Result<String, MultipartError> {
    let hex: String = seed.iter().map(|b| format!("{b:02x}")).collect();
    for attempt in 0u32..64 {
        let candidate =
            if attempt == 0 { format!("voice-ua-{hex}") } else { format!("voice-ua-{hex}-{attempt}") };
        let occurs = |haystack: &[u8]| contains(haystack, candidate.as_bytes());
        if !occurs(data) && !fields.iter().any(|(_, value)| occurs(value.as_bytes())) {
            return Ok(candidate);
        }
    }
    Err(MultipartError::NoBoundary)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|window| window == needle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn wav_header_is_canonical() {
        let wav = wav_pcm16(&[0, 1, -1, i16::MAX, i16::MIN], 8000);
        assert_eq!(wav.len(), 44 + 10);
        let expected_header: &[u8] = &[
            b'R', b'I', b'F', b'F', 46, 0, 0, 0, b'W', b'A', b'V', b'E', b'f', b'm', b't', b' ', 16, 0, 0, 0,
            1, 0, 1, 0, 0x40, 0x1f, 0, 0, 0x80, 0x3e, 0, 0, 2, 0, 16, 0, b'd', b'a', b't', b'a', 10, 0, 0, 0,
        ];
        assert_eq!(&wav[..44], expected_header);
        assert_eq!(&wav[44..], &[0, 0, 1, 0, 0xff, 0xff, 0xff, 0x7f, 0x00, 0x80]);
    }

    #[test]
    fn the_buffer_is_reused() {
        let mut buf = wav_pcm16(&[7; 1000], 16_000);
        let capacity = buf.capacity();
        write_wav_pcm16(&mut buf, &[1, 2], 16_000);
        assert_eq!(buf.len(), 48);
        assert_eq!(&buf[24..28], &16_000u32.to_le_bytes());
        assert_eq!(buf.capacity(), capacity, "no new allocation for a shorter utterance");
    }

    /// The parts of `body` split at `boundary`: (headers, content) each.
    fn parts(content_type: &str, body: &[u8]) -> Vec<(String, Vec<u8>)> {
        let boundary = content_type.strip_prefix("multipart/form-data; boundary=").expect("a boundary");
        let delimiter = format!("\r\n--{boundary}");
        let mut text = b"\r\n".to_vec();
        text.extend_from_slice(body);
        let mut out = Vec::new();
        let mut rest = &text[..];
        loop {
            let at = find(rest, delimiter.as_bytes()).expect("a delimiter");
            rest = &rest[at + delimiter.len()..];
            if rest.starts_with(b"--\r\n") {
                assert_eq!(rest.len(), 4, "nothing after the closing delimiter");
                return out;
            }
            rest = rest.strip_prefix(b"\r\n").expect("CRLF after a delimiter");
            let head_end = find(rest, b"\r\n\r\n").expect("the end of the part's headers");
            let headers = String::from_utf8(rest[..head_end].to_vec()).expect("UTF-8 headers");
            let content_start = head_end + 4;
            let content_end =
                content_start + find(&rest[content_start..], delimiter.as_bytes()).expect("the next");
            out.push((headers, rest[content_start..content_end].to_vec()));
            rest = &rest[content_end..];
        }
    }

    fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
        haystack.windows(needle.len()).position(|w| w == needle)
    }

    #[test]
    fn a_transcription_upload() {
        let wav = wav_pcm16(&[0; 160], 8000);
        let file =
            FilePart { field: "file", filename: "utterance.wav", content_type: "audio/wav", data: &wav };
        let (content_type, body) =
            multipart_form([0xab; 16], &[("model", "whisper-1"), ("language", "uk")], &file).expect("a body");
        assert_eq!(content_type, format!("multipart/form-data; boundary=voice-ua-{}", "ab".repeat(16)));
        let got = parts(&content_type, &body);
        assert_eq!(
            got,
            vec![
                ("Content-Disposition: form-data; name=\"model\"".to_owned(), b"whisper-1".to_vec()),
                ("Content-Disposition: form-data; name=\"language\"".to_owned(), b"uk".to_vec()),
                (
                    "Content-Disposition: form-data; name=\"file\"; filename=\"utterance.wav\"\r\nContent-Type: audio/wav"
                        .to_owned(),
                    wav
                ),
            ]
        );
    }

    #[test]
    fn a_boundary_found_in_the_data_is_replaced() {
        let seed = [0x11; 16];
        let taken = format!("--voice-ua-{}", "11".repeat(16));
        let file =
            FilePart { field: "file", filename: "a.wav", content_type: "audio/wav", data: taken.as_bytes() };
        let (content_type, body) = multipart_form(seed, &[("prompt", &taken)], &file).expect("a body");
        assert!(content_type.ends_with("-1"), "{content_type}");
        let got = parts(&content_type, &body);
        assert_eq!(got[0].1, taken.as_bytes());
        assert_eq!(got[1].1, taken.as_bytes());
    }

    #[test]
    fn header_injection_is_refused_and_values_may_span_lines() {
        let file = FilePart { field: "file", filename: "a.wav", content_type: "audio/wav", data: b"x" };
        let bad_name = multipart_form([0; 16], &[("model\r\nX-Evil: 1", "v")], &file);
        assert!(matches!(bad_name, Err(MultipartError::UnsafeHeader { what: "field name", .. })));
        let bad_file = FilePart { filename: "a\".wav", ..file };
        assert!(matches!(
            multipart_form([0; 16], &[], &bad_file),
            Err(MultipartError::UnsafeHeader { what: "file name", .. })
        ));
        let bad_type = FilePart { content_type: "audio/wav\nX: y", ..file };
        assert!(matches!(
            multipart_form([0; 16], &[], &bad_type),
            Err(MultipartError::UnsafeHeader { what: "content type", .. })
        ));
        let (content_type, body) =
            multipart_form([0; 16], &[("prompt", "line one\r\nContent-Type: x")], &file).expect("a body");
        let got = parts(&content_type, &body);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].1, b"line one\r\nContent-Type: x");
    }

    proptest! {
        #[test]
        fn any_data_round_trips(
            seed in any::<[u8; 16]>(),
            value in ".{0,40}",
            data in proptest::collection::vec(any::<u8>(), 0..300),
        ) {
            let file = FilePart { field: "file", filename: "u.wav", content_type: "audio/wav", data: &data };
            let (content_type, body) = multipart_form(seed, &[("prompt", &value)], &file).expect("a body");
            let got = parts(&content_type, &body);
            prop_assert_eq!(got.len(), 2);
            prop_assert_eq!(&got[0].1, value.as_bytes());
            prop_assert_eq!(&got[1].1, &data);
        }

        #[test]
        fn any_samples_round_trip(samples in proptest::collection::vec(any::<i16>(), 0..500), rate in any::<u32>()) {
            let wav = wav_pcm16(&samples, rate);
            prop_assert_eq!(wav.len(), 44 + 2 * samples.len());
            prop_assert_eq!(&wav[40..44], &u32::try_from(2 * samples.len()).expect("small").to_le_bytes());
            let back: Vec<i16> = wav[44..].chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]])).collect();
            prop_assert_eq!(back, samples);
        }
    }
}
