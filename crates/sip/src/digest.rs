//! HTTP digest authentication as SIP uses it (RFC 3261 §22, RFC 7616): reading a
//! `WWW-Authenticate`/`Proxy-Authenticate` challenge and writing the matching
//! `Authorization` answer. MD5 and SHA-256, with `qop=auth` or without qop.
//! Pure functions: the caller supplies the cnonce, so answers are reproducible.

use md5::{Digest as _, Md5};
use sha2::Sha256;
use std::fmt::Write as _;

/// The hash a challenge asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Md5,
    Sha256,
}

impl Algorithm {
    fn name(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Sha256 => "SHA-256",
        }
    }

    fn hash_hex(self, input: &str) -> String {
        let mut out = String::with_capacity(64);
        match self {
            Algorithm::Md5 => {
                for b in Md5::digest(input.as_bytes()) {
                    let _ = write!(out, "{b:02x}");
                }
            }
            Algorithm::Sha256 => {
                for b in Sha256::digest(input.as_bytes()) {
                    let _ = write!(out, "{b:02x}");
                }
            }
        }
        out
    }
}

/// One parsed `Digest` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    pub realm: String,
    pub nonce: String,
    pub opaque: Option<String>,
    pub algorithm: Algorithm,
    /// The server offered `qop=auth` (we never use `auth-int`).
    pub qop_auth: bool,
    pub stale: bool,
}

/// Why a challenge could not be answered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChallengeError {
    #[error("the challenge is not a Digest challenge")]
    NotDigest,
    #[error("the challenge has no {0}")]
    Missing(&'static str),
    #[error("the challenge asks for algorithm {0}, which voice-ua does not speak (MD5 and SHA-256 only)")]
    UnsupportedAlgorithm(String),
    #[error("the challenge only offers qop={0}; voice-ua answers qop=auth or no qop")]
    UnsupportedQop(String),
    /// A control character (CR, LF, NUL…) in a value we would copy into our answer.
    #[error("the challenge's {0} holds a control character")]
    Unprintable(&'static str),
}

impl Challenge {
    /// Parse the value of one `WWW-Authenticate` or `Proxy-Authenticate` header.
    pub fn parse(value: &str) -> Result<Challenge, ChallengeError> {
        let value = value.trim();
        let (scheme, rest) = value.split_once(char::is_whitespace).unwrap_or((value, ""));
        if !scheme.eq_ignore_ascii_case("digest") {
            return Err(ChallengeError::NotDigest);
        }
        let mut realm = None;
        let mut nonce = None;
        let mut opaque = None;
        let mut algorithm = Algorithm::Md5;
        let mut qop: Option<String> = None;
        let mut stale = false;
        for (name, val) in auth_params(rest) {
            match name.to_ascii_lowercase().as_str() {
                "realm" => realm = Some(val),
                "nonce" => nonce = Some(val),
                "opaque" => opaque = Some(val),
                "stale" => stale = val.eq_ignore_ascii_case("true"),
                "qop" => qop = Some(val),
                "algorithm" => {
                    algorithm = if val.eq_ignore_ascii_case("md5") {
                        Algorithm::Md5
                    } else if val.eq_ignore_ascii_case("sha-256") {
                        Algorithm::Sha256
                    } else {
                        return Err(ChallengeError::UnsupportedAlgorithm(val));
                    }
                }
                _ => {}
            }
        }
        let qop_auth = match &qop {
            None => false,
            Some(list) => {
                let offers_auth = list.split(',').any(|q| q.trim().eq_ignore_ascii_case("auth"));
                if !offers_auth {
                    return Err(ChallengeError::UnsupportedQop(list.clone()));
                }
                true
            }
        };
        // These go back in our Authorization header: never a line break or a NUL.
        for (name, v) in [("realm", &realm), ("nonce", &nonce), ("opaque", &opaque)] {
            if v.as_deref().is_some_and(|v| v.chars().any(char::is_control)) {
                return Err(ChallengeError::Unprintable(name));
            }
        }
        Ok(Challenge {
            realm: realm.ok_or(ChallengeError::Missing("realm"))?,
            nonce: nonce.ok_or(ChallengeError::Missing("nonce"))?,
            opaque,
            algorithm,
            qop_auth,
            stale,
        })
    }

    /// Pick the best challenge among several headers: SHA-256 over MD5 (RFC 8760),
    /// skipping ones we cannot answer. Returns the last error when none fits.
    pub fn choose<'a>(values: impl IntoIterator<Item = &'a str>) -> Result<Challenge, ChallengeError> {
        let mut best: Option<Challenge> = None;
        let mut last_err = ChallengeError::Missing("WWW-Authenticate header");
        for v in values {
            match Challenge::parse(v) {
                Ok(c) => {
                    let better = match &best {
                        None => true,
                        Some(b) => b.algorithm == Algorithm::Md5 && c.algorithm == Algorithm::Sha256,
                    };
                    if better {
                        best = Some(c);
                    }
                }
                Err(e) => last_err = e,
            }
        }
        best.ok_or(last_err)
    }
}

/// What the answer is computed over.
pub struct Credentials<'a> {
    pub username: &'a str,
    pub password: &'a str,
}

/// Compute the `response` value (lower-case hex).
pub fn response(
    ch: &Challenge,
    cred: &Credentials<'_>,
    method: &str,
    uri: &str,
    cnonce: &str,
    nc: u32,
) -> String {
    let alg = ch.algorithm;
    let ha1 = alg.hash_hex(&format!("{}:{}:{}", cred.username, ch.realm, cred.password));
    let ha2 = alg.hash_hex(&format!("{method}:{uri}"));
    if ch.qop_auth {
        alg.hash_hex(&format!("{ha1}:{}:{nc:08x}:{cnonce}:auth:{ha2}", ch.nonce))
    } else {
        alg.hash_hex(&format!("{ha1}:{}:{ha2}", ch.nonce))
    }
}

/// The full `Authorization` (or `Proxy-Authorization`) header value.
pub fn authorization(
    ch: &Challenge,
    cred: &Credentials<'_>,
    method: &str,
    uri: &str,
    cnonce: &str,
    nc: u32,
) -> String {
    let resp = response(ch, cred, method, uri, cnonce, nc);
    let mut h = format!(
        "Digest username=\"{}\", realm=\"{}\", nonce=\"{}\", uri=\"{}\", response=\"{}\", algorithm={}",
        quote_escape(cred.username),
        quote_escape(&ch.realm),
        quote_escape(&ch.nonce),
        uri,
        resp,
        ch.algorithm.name()
    );
    if ch.qop_auth {
        let _ = write!(h, ", cnonce=\"{cnonce}\", qop=auth, nc={nc:08x}");
    }
    if let Some(o) = &ch.opaque {
        let _ = write!(h, ", opaque=\"{}\"", quote_escape(o));
    }
    h
}

fn quote_escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

/// Split `a="x, y", b=tok, c="q\"uote"` into (name, unquoted value) pairs.
fn auth_params(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while matches!(chars.peek(), Some(c) if c.is_whitespace() || *c == ',') {
            chars.next();
        }
        let mut name = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c == ',' || c.is_whitespace() {
                break;
            }
            name.push(c);
            chars.next();
        }
        if name.is_empty() {
            break;
        }
        while matches!(chars.peek(), Some(c) if c.is_whitespace()) {
            chars.next();
        }
        let mut value = String::new();
        if chars.peek() == Some(&'=') {
            chars.next();
            while matches!(chars.peek(), Some(c) if c.is_whitespace()) {
                chars.next();
            }
            if chars.peek() == Some(&'"') {
                chars.next();
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => {
                            if let Some(n) = chars.next() {
                                value.push(n);
                            }
                        }
                        '"' => break,
                        _ => value.push(c),
                    }
                }
            } else {
                while let Some(&c) = chars.peek() {
                    if c == ',' || c.is_whitespace() {
                        break;
                    }
                    value.push(c);
                    chars.next();
                }
            }
        }
        out.push((name, value));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc2617_example_md5_qop_auth() {
        let ch = Challenge::parse(
            "Digest realm=\"testrealm@host.com\", qop=\"auth,auth-int\", \
             nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", opaque=\"5ccc069c403ebaf9f0171e9517f40e41\"",
        )
        .expect("valid challenge");
        assert!(ch.qop_auth);
        assert_eq!(ch.algorithm, Algorithm::Md5);
        let cred = Credentials { username: "Mufasa", password: "Circle Of Life" };
        assert_eq!(
            response(&ch, &cred, "GET", "/dir/index.html", "0a4f113b", 1),
            "6629fae49393a05397450978507c4ef1"
        );
    }

    #[test]
    fn rfc7616_examples_md5_and_sha256() {
        let base = "realm=\"http-auth@example.org\", qop=\"auth, auth-int\", \
                    nonce=\"7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v\", \
                    opaque=\"FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS\"";
        let cred = Credentials { username: "Mufasa", password: "Circle of Life" };
        let cnonce = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ";
        let md5 = Challenge::parse(&format!("Digest {base}, algorithm=MD5")).expect("md5");
        assert_eq!(
            response(&md5, &cred, "GET", "/dir/index.html", cnonce, 1),
            "8ca523f5e9506fed4657c9700eebdbec"
        );
        let sha = Challenge::parse(&format!("Digest {base}, algorithm=SHA-256")).expect("sha");
        assert_eq!(sha.algorithm, Algorithm::Sha256);
        assert_eq!(
            response(&sha, &cred, "GET", "/dir/index.html", cnonce, 1),
            "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
        );
    }

    #[test]
    fn no_qop_uses_rfc2069_form() {
        let ch = Challenge::parse("Digest realm=\"asterisk\",nonce=\"abc\"").expect("valid");
        assert!(!ch.qop_auth);
        let cred = Credentials { username: "9000", password: "pw" };
        let ha1 = Algorithm::Md5.hash_hex("9000:asterisk:pw");
        let ha2 = Algorithm::Md5.hash_hex("REGISTER:sip:pbx");
        let expect = Algorithm::Md5.hash_hex(&format!("{ha1}:abc:{ha2}"));
        assert_eq!(response(&ch, &cred, "REGISTER", "sip:pbx", "x", 1), expect);
        let h = authorization(&ch, &cred, "REGISTER", "sip:pbx", "x", 1);
        assert!(!h.contains("qop"), "{h}");
        assert!(!h.contains("cnonce"), "{h}");
    }

    #[test]
    fn authorization_header_carries_every_field() {
        let ch = Challenge::parse(
            "Digest realm=\"pbx\", nonce=\"n1\", opaque=\"op\", qop=\"auth\", algorithm=SHA-256",
        )
        .expect("valid");
        let cred = Credentials { username: "9000", password: "pw" };
        let h = authorization(&ch, &cred, "REGISTER", "sip:127.0.0.1", "c0ffee", 1);
        for part in [
            "Digest username=\"9000\"",
            "realm=\"pbx\"",
            "nonce=\"n1\"",
            "uri=\"sip:127.0.0.1\"",
            "algorithm=SHA-256",
            "cnonce=\"c0ffee\"",
            "qop=auth",
            "nc=00000001",
            "opaque=\"op\"",
        ] {
            assert!(h.contains(part), "{part} missing from {h}");
        }
    }

    #[test]
    fn odd_challenges_are_reported_not_panicked() {
        assert_eq!(Challenge::parse("Basic realm=\"x\""), Err(ChallengeError::NotDigest));
        assert_eq!(Challenge::parse("Digest nonce=\"x\""), Err(ChallengeError::Missing("realm")));
        assert!(matches!(
            Challenge::parse("Digest realm=a, nonce=b, algorithm=SHA-512-256"),
            Err(ChallengeError::UnsupportedAlgorithm(_))
        ));
        assert!(matches!(
            Challenge::parse("Digest realm=a, nonce=b, qop=\"auth-int\""),
            Err(ChallengeError::UnsupportedQop(_))
        ));
        let stale = Challenge::parse("Digest realm=a,nonce=b,stale=TRUE").expect("valid");
        assert!(stale.stale);
        let quoted = Challenge::parse(r#"Digest realm="a \"q\", b", nonce="x""#).expect("valid");
        assert_eq!(quoted.realm, "a \"q\", b");
    }

    #[test]
    fn a_line_break_in_a_challenge_never_reaches_our_answer() {
        // A bare CR survives the header reader (it splits at CRLF and LF only).
        assert_eq!(
            Challenge::parse("Digest realm=\"pbx\rX-Injected: 1\", nonce=\"n\""),
            Err(ChallengeError::Unprintable("realm"))
        );
        assert_eq!(
            Challenge::parse("Digest realm=r, nonce=\"a\u{0}b\""),
            Err(ChallengeError::Unprintable("nonce"))
        );
        assert_eq!(
            Challenge::parse("Digest realm=r, nonce=n, opaque=\"\u{7f}\""),
            Err(ChallengeError::Unprintable("opaque"))
        );
    }

    #[test]
    fn choose_prefers_sha256() {
        let c = Challenge::choose([
            "Digest realm=\"r\", nonce=\"1\", algorithm=MD5",
            "Digest realm=\"r\", nonce=\"2\", algorithm=SHA-256",
        ])
        .expect("one fits");
        assert_eq!(c.algorithm, Algorithm::Sha256);
        let c = Challenge::choose(["Digest realm=r,nonce=1,algorithm=AKAv1-MD5", "Digest realm=r,nonce=2"])
            .expect("md5 fits");
        assert_eq!(c.nonce, "2");
    }

    /// A quoted-string as a server would write it.
    fn quoted(v: &str) -> String {
        format!("\"{}\"", quote_escape(v))
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics(s in ".{0,200}") {
            let _ = Challenge::parse(&s);
            let _ = Challenge::parse(&format!("Digest {s}"));
        }

        /// Whatever the server sends, the Authorization we build is one line of
        /// printable text.
        #[test]
        fn any_answer_is_one_printable_line(s in "\\PC{0,40}", t in "[\\x00-\\x7f]{0,40}") {
            for text in [format!("Digest realm={}, nonce={}", quoted(&s), quoted(&t)), format!("Digest {s} {t}")] {
                if let Ok(ch) = Challenge::parse(&text) {
                    let cred = Credentials { username: "9000", password: "pw" };
                    let h = authorization(&ch, &cred, "REGISTER", "sip:pbx", "c", 1);
                    proptest::prop_assert!(!h.chars().any(char::is_control), "{:?}", h);
                }
            }
        }

        /// Values written as quoted-strings read back as they were.
        #[test]
        fn quoted_values_round_trip(
            realm in "[ -~]{0,30}", nonce in "[!-~]{1,30}", opaque in "[ -~]{0,20}", sha in proptest::bool::ANY,
        ) {
            let alg = if sha { "SHA-256" } else { "MD5" };
            let text = format!(
                "Digest realm={}, nonce={}, opaque={}, qop=\"auth\", algorithm={alg}",
                quoted(&realm), quoted(&nonce), quoted(&opaque)
            );
            let ch = Challenge::parse(&text).expect("a well-formed challenge");
            proptest::prop_assert_eq!(&ch.realm, &realm);
            proptest::prop_assert_eq!(&ch.nonce, &nonce);
            proptest::prop_assert_eq!(ch.opaque.as_deref(), Some(opaque.as_str()));
            proptest::prop_assert!(ch.qop_auth);
            let want = if sha { Algorithm::Sha256 } else { Algorithm::Md5 };
            proptest::prop_assert_eq!(ch.algorithm, want);
        }
    }
}
