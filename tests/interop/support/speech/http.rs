//! A small blocking HTTP/1.1 client on std's `TcpStream`, enough to drive the speech
//! server from tests: one keep-alive connection, requests with a known body length,
//! responses read with `Content-Length` or chunked, chunk by chunk with the instant
//! each arrived (to see a stream arrive before it is whole), and multipart/form-data
//! bodies.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// A response's status line and headers.
#[derive(Debug, Clone)]
pub struct Head {
    pub status: u16,
    pub headers: Vec<(String, String)>,
}

impl Head {
    /// The first header called `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn is_chunked(&self) -> bool {
        self.header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
    }
}

/// One chunk of a chunked body: its bytes and when its last byte was read.
#[derive(Debug, Clone)]
pub struct Chunk {
    pub data: Vec<u8>,
    pub at: Instant,
}

/// A whole response; `chunks` is empty unless the body was chunked.
#[derive(Debug, Clone)]
pub struct Response {
    pub head: Head,
    pub body: Vec<u8>,
    pub chunks: Vec<Chunk>,
}

impl Response {
    pub fn status(&self) -> u16 {
        self.head.status
    }

    /// The body as JSON (panics, naming the body, when it is not).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!("response {} is not JSON ({e}): {}", self.head.status, String::from_utf8_lossy(&self.body))
        })
    }
}

/// One keep-alive connection to 127.0.0.1:`port`.
pub struct Conn {
    port: u16,
    reader: BufReader<TcpStream>,
}

impl Conn {
    pub fn connect(port: u16) -> Conn {
        let stream = TcpStream::connect(("127.0.0.1", port))
            .unwrap_or_else(|e| panic!("cannot connect to 127.0.0.1:{port}: {e}"));
        stream.set_read_timeout(Some(Duration::from_secs(60))).expect("set a read timeout");
        stream.set_nodelay(true).expect("set TCP_NODELAY");
        Conn { port, reader: BufReader::new(stream) }
    }

    /// Sends a request with `body` (and its `Content-Length`); `content_type` when
    /// given. Does not read the response.
    pub fn send(&mut self, method: &str, path: &str, content_type: Option<&str>, body: &[u8]) {
        let mut req = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\n", self.port);
        if let Some(ct) = content_type {
            req.push_str(&format!("Content-Type: {ct}\r\n"));
        }
        if method != "GET" || !body.is_empty() {
            req.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        req.push_str("\r\n");
        self.send_raw(&[req.as_bytes(), body].concat());
    }

    /// Writes `bytes` as they are (for malformed requests).
    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.reader.get_mut().write_all(bytes).expect("send a request to the speech server");
    }

    /// Reads a status line and headers (skipping any 1xx).
    pub fn read_head(&mut self) -> Head {
        loop {
            let line = self.line();
            let mut it = line.splitn(3, ' ');
            let (version, code) = (it.next().unwrap_or(""), it.next().unwrap_or(""));
            assert!(version.starts_with("HTTP/1."), "not an HTTP/1.x status line: {line:?}");
            let status: u16 = code.parse().unwrap_or_else(|_| panic!("bad status line {line:?}"));
            let mut headers = Vec::new();
            loop {
                let h = self.line();
                if h.is_empty() {
                    break;
                }
                let (name, value) = h.split_once(':').unwrap_or_else(|| panic!("bad header line {h:?}"));
                headers.push((name.trim().to_string(), value.trim().to_string()));
            }
            if status >= 200 {
                return Head { status, headers };
            }
        }
    }

    /// The next chunk of a chunked body, or `None` after the last one (and its
    /// trailers) was read.
    pub fn read_chunk(&mut self) -> Option<Chunk> {
        let line = self.line();
        let size = line.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size, 16).unwrap_or_else(|_| panic!("bad chunk size line {line:?}"));
        if size == 0 {
            while !self.line().is_empty() {}
            return None;
        }
        let mut data = vec![0; size];
        self.reader.read_exact(&mut data).expect("read a whole chunk");
        let at = Instant::now();
        assert_eq!(self.line(), "", "a chunk's data ends with CRLF");
        Some(Chunk { data, at })
    }

    /// Reads the body `head` announces.
    pub fn read_body(&mut self, head: Head) -> Response {
        if head.is_chunked() {
            let mut chunks = Vec::new();
            while let Some(c) = self.read_chunk() {
                chunks.push(c);
            }
            let body = chunks.iter().flat_map(|c| c.data.iter().copied()).collect();
            return Response { head, body, chunks };
        }
        let len: usize = head
            .header("content-length")
            .map(|v| v.parse().unwrap_or_else(|_| panic!("bad Content-Length {v:?}")))
            .unwrap_or_else(|| panic!("a response without Content-Length or chunking: {head:?}"));
        let mut body = vec![0; len];
        self.reader.read_exact(&mut body).expect("read a whole response body");
        Response { head, body, chunks: Vec::new() }
    }

    pub fn read_response(&mut self) -> Response {
        let head = self.read_head();
        self.read_body(head)
    }

    pub fn request(&mut self, method: &str, path: &str, content_type: Option<&str>, body: &[u8]) -> Response {
        self.send(method, path, content_type, body);
        self.read_response()
    }

    /// Whether the server has closed the connection: a read returns end of file.
    pub fn is_closed_by_peer(&mut self) -> bool {
        self.reader.fill_buf().map(|b| b.is_empty()).unwrap_or(true)
    }

    fn line(&mut self) -> String {
        let mut buf = Vec::new();
        self.reader.read_until(b'\n', &mut buf).expect("read a line from the speech server");
        assert!(buf.ends_with(b"\r\n"), "a line ends with CRLF: {:?}", String::from_utf8_lossy(&buf));
        buf.truncate(buf.len() - 2);
        String::from_utf8(buf).expect("a header line is UTF-8")
    }
}

/// A multipart/form-data part.
pub enum Part<'a> {
    Text(&'a str),
    File { filename: &'a str, content_type: &'a str, data: &'a [u8] },
}

/// The `Content-Type` and body of a multipart/form-data request with `parts`.
pub fn multipart(parts: &[(&str, Part<'_>)]) -> (String, Vec<u8>) {
    const BOUNDARY: &str = "voice-ua-test-1b3f9c2a7d";
    let mut body = Vec::new();
    for (name, part) in parts {
        body.extend_from_slice(format!("--{BOUNDARY}\r\n").as_bytes());
        match part {
            Part::Text(value) => {
                body.extend_from_slice(
                    format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n").as_bytes(),
                );
            }
            Part::File { filename, content_type, data } => {
                body.extend_from_slice(
                    format!(
                        "Content-Disposition: form-data; name=\"{name}\"; filename=\"{filename}\"\r\nContent-Type: {content_type}\r\n\r\n"
                    )
                    .as_bytes(),
                );
                body.extend_from_slice(data);
                body.extend_from_slice(b"\r\n");
            }
        }
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={BOUNDARY}"), body)
}
