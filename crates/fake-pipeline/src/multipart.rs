//! `multipart/form-data` (RFC 7578), parsed strictly: the boundary from the
//! Content-Type, CRLF line ends, each part with `Content-Disposition: form-data;
//! name="…"` (and `filename="…"` for files), the closing delimiter present.

/// One part of the form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// `name`.
    pub name: String,
    /// `filename`, for a file.
    pub filename: Option<String>,
    /// The part's `Content-Type`, when given.
    pub content_type: Option<String>,
    /// The bytes.
    pub data: Vec<u8>,
}

/// Why a body is not a form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct FormError(pub String);

/// The boundary of a `multipart/form-data` Content-Type.
pub fn boundary(content_type: &str) -> Result<String, FormError> {
    let mut params = content_type.split(';');
    let kind = params.next().unwrap_or("").trim();
    if !kind.eq_ignore_ascii_case("multipart/form-data") {
        return Err(FormError(format!("Content-Type {content_type:?} is not multipart/form-data")));
    }
    for p in params {
        if let Some((k, v)) = p.split_once('=') {
            if k.trim().eq_ignore_ascii_case("boundary") {
                let v = v.trim();
                let v = v.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or(v);
                if v.is_empty() || v.len() > 70 {
                    return Err(FormError("the multipart boundary must be 1 to 70 characters".into()));
                }
                return Ok(v.to_owned());
            }
        }
    }
    Err(FormError("multipart/form-data without a boundary parameter".into()))
}

fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    if needle.is_empty() || hay.len() < needle.len() {
        return None;
    }
    (from..=hay.len() - needle.len()).find(|&i| &hay[i..i + needle.len()] == needle)
}

/// The value of `key` in a header's parameters (`name="file"`).
fn param(header: &str, key: &str) -> Option<String> {
    for p in header.split(';').skip(1) {
        let (k, v) = p.split_once('=')?;
        if k.trim().eq_ignore_ascii_case(key) {
            let v = v.trim();
            return Some(v.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or(v).to_owned());
        }
    }
    None
}

/// The parts of `body`, delimited by `boundary`.
pub fn parse(body: &[u8], boundary: &str) -> Result<Vec<Part>, FormError> {
    let delimiter = format!("--{boundary}");
    let first = find(body, delimiter.as_bytes(), 0)
        .ok_or_else(|| FormError("no multipart delimiter in the body".into()))?;
    // A preamble is allowed, but it ends with CRLF before the first delimiter.
    if first > 0 && (first < 2 || &body[first - 2..first] != b"\r\n") {
        return Err(FormError("the first multipart delimiter does not start a line".into()));
    }
    let next_delimiter = format!("\r\n--{boundary}");
    let mut at = first + delimiter.len();
    let mut parts = Vec::new();
    loop {
        if body[at..].starts_with(b"--") {
            return Ok(parts);
        }
        if !body[at..].starts_with(b"\r\n") {
            return Err(FormError("a multipart delimiter is not followed by CRLF".into()));
        }
        at += 2;
        let head_end =
            find(body, b"\r\n\r\n", at).ok_or_else(|| FormError("a part's headers do not end".into()))?;
        let head = std::str::from_utf8(&body[at..head_end])
            .map_err(|_| FormError("a part's headers are not UTF-8".into()))?;
        let (mut disposition, mut content_type) = (None, None);
        for line in head.split("\r\n") {
            let (name, value) =
                line.split_once(':').ok_or_else(|| FormError(format!("malformed part header {line:?}")))?;
            if name.trim().eq_ignore_ascii_case("content-disposition") {
                disposition = Some(value.trim().to_owned());
            } else if name.trim().eq_ignore_ascii_case("content-type") {
                content_type = Some(value.trim().to_owned());
            }
        }
        let disposition = disposition.ok_or_else(|| FormError("a part has no Content-Disposition".into()))?;
        if !disposition.split(';').next().is_some_and(|d| d.trim().eq_ignore_ascii_case("form-data")) {
            return Err(FormError(format!("Content-Disposition {disposition:?} is not form-data")));
        }
        let name = param(&disposition, "name").filter(|n| !n.is_empty());
        let name =
            name.ok_or_else(|| FormError(format!("Content-Disposition {disposition:?} has no name")))?;
        let data_start = head_end + 4;
        let end = find(body, next_delimiter.as_bytes(), data_start)
            .ok_or_else(|| FormError(format!("part {name:?} is not closed by a delimiter")))?;
        parts.push(Part {
            name,
            filename: param(&disposition, "filename"),
            content_type,
            data: body[data_start..end].to_vec(),
        });
        at = end + next_delimiter.len();
    }
}

/// A form body of `fields` and one file, as a client builds it (for tests).
pub fn build(boundary: &str, fields: &[(&str, &str)], file: Option<(&str, &str, &[u8])>) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, value) in fields {
        out.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n")
                .as_bytes(),
        );
    }
    if let Some((name, filename, data)) = file {
        out.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{filename}\"\r\nContent-Type: audio/wav\r\n\r\n"
            )
            .as_bytes(),
        );
        out.extend_from_slice(data);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_clients_build_and_refuses_the_rest() {
        let b = boundary("multipart/form-data; boundary=\"abc123\"").expect("boundary");
        assert_eq!(b, "abc123");
        let body =
            build(&b, &[("model", "whisper-1"), ("language", "en")], Some(("file", "a.wav", b"RIFF\r\n--x")));
        let parts = parse(&body, &b).expect("valid");
        assert_eq!(parts.len(), 3);
        assert_eq!((parts[0].name.as_str(), parts[0].data.as_slice()), ("model", &b"whisper-1"[..]));
        assert_eq!(parts[2].filename.as_deref(), Some("a.wav"));
        assert_eq!(parts[2].data, b"RIFF\r\n--x");
        assert!(boundary("application/json").is_err());
        assert!(boundary("multipart/form-data").is_err());
        let unclosed = &body[..body.len() - 10];
        assert!(parse(unclosed, &b).is_err());
        let lf = String::from_utf8_lossy(&body).replace("\r\n", "\n");
        assert!(parse(lf.as_bytes(), &b).is_err(), "bare LF line ends");
        let no_name = b"--abc123\r\nContent-Disposition: form-data\r\n\r\nx\r\n--abc123--\r\n";
        assert!(parse(no_name, &b).is_err());
    }
}
