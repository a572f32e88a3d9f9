//! A tool's HTTP response (status line, headers, Content-Length / chunked / close
//! body): never a panic; a 2xx body is at most MAX_BODY characters and reads the same
//! when framed again by length and by chunks; an error body is one short line.
#![no_main]

use libfuzzer_sys::fuzz_target;
use voice_ua_agent::deepgram::http::{error_excerpt, parse_response, HttpError, MAX_BODY, MAX_ERROR_BODY};

fuzz_target!(|data: &[u8]| match parse_response(data) {
    Ok(text) => {
        assert!(!text.trim().is_empty());
        assert!(text.chars().count() <= MAX_BODY);
        if text.len() <= MAX_BODY {
            let by_length = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{text}", text.len());
            assert_eq!(parse_response(by_length.as_bytes()).ok().as_deref(), Some(text.as_str()));
            let chunked = format!(
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{text}\r\n0\r\n\r\n",
                text.len()
            );
            assert_eq!(parse_response(chunked.as_bytes()).ok().as_deref(), Some(text.as_str()));
        }
    }
    Err(HttpError::Status { status, body }) => {
        assert!((100..1000).contains(&status) && !(200..300).contains(&status));
        assert!(body.len() <= MAX_ERROR_BODY);
        assert!(!body.chars().any(char::is_control));
        assert_eq!(error_excerpt(&body), body, "an excerpt is its own excerpt");
    }
    Err(_) => {}
});
