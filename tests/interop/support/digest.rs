//! Independent check of a SIP digest `Authorization` header (RFC 7616 /
//! RFC 8760), used where sipp 3.6.1 cannot verify: it only knows MD5 and
//! AKAv1-MD5, not SHA-256.

use std::collections::HashMap;

use sha2::{Digest, Sha256};

/// The parameters of a `Digest ...` credentials value, keys lower-cased,
/// quotes removed.
pub fn parse_params(header_value: &str) -> HashMap<String, String> {
    let value = header_value.trim();
    let rest = value.strip_prefix("Digest").or_else(|| value.strip_prefix("digest")).unwrap_or(value);
    let mut params = HashMap::new();
    let mut chars = rest.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ',') {
            chars.next();
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c == ',' {
                break;
            }
            key.push(c);
            chars.next();
        }
        if key.trim().is_empty() {
            break;
        }
        let mut val = String::new();
        if chars.peek() == Some(&'=') {
            chars.next();
            while chars.peek().is_some_and(|c| c.is_whitespace()) {
                chars.next();
            }
            if chars.peek() == Some(&'"') {
                chars.next();
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => {
                            if let Some(escaped) = chars.next() {
                                val.push(escaped);
                            }
                        }
                        '"' => break,
                        _ => val.push(c),
                    }
                }
            } else {
                while let Some(&c) = chars.peek() {
                    if c == ',' {
                        break;
                    }
                    val.push(c);
                    chars.next();
                }
            }
        }
        params.insert(key.trim().to_ascii_lowercase(), val.trim().to_string());
    }
    params
}

fn sha256_hex(input: &str) -> String {
    Sha256::digest(input.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// The SHA-256 digest response the credentials should carry for `method`
/// and `password`, from their own username/realm/nonce/uri/qop/nc/cnonce.
pub fn expected_sha256_response(
    params: &HashMap<String, String>,
    method: &str,
    password: &str,
) -> Result<String, String> {
    let get = |k: &str| {
        params
            .get(k)
            .map(String::as_str)
            .ok_or_else(|| format!("Authorization has no {k} parameter: {params:?}"))
    };
    let ha1 = sha256_hex(&format!("{}:{}:{password}", get("username")?, get("realm")?));
    let ha2 = sha256_hex(&format!("{method}:{}", get("uri")?));
    let nonce = get("nonce")?;
    match params.get("qop").map(String::as_str) {
        Some("auth") => {
            Ok(sha256_hex(&format!("{ha1}:{nonce}:{}:{}:auth:{ha2}", get("nc")?, get("cnonce")?)))
        }
        None => Ok(sha256_hex(&format!("{ha1}:{nonce}:{ha2}"))),
        Some(other) => Err(format!("unexpected qop {other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7616 section 3.9.1, the SHA-256 example.
    #[test]
    fn rfc7616_sha256_example() {
        let header = r#"Digest username="Mufasa", realm="http-auth@example.org", uri="/dir/index.html", algorithm=SHA-256, nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", nc=00000001, cnonce="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ", qop=auth, response="753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1", opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS""#;
        let params = parse_params(header);
        assert_eq!(params.get("algorithm").map(String::as_str), Some("SHA-256"));
        assert_eq!(params.get("qop").map(String::as_str), Some("auth"));
        let expected = expected_sha256_response(&params, "GET", "Circle of Life").expect("complete params");
        assert_eq!(Some(&expected), params.get("response"));
        let wrong = expected_sha256_response(&params, "GET", "circle of life").expect("complete params");
        assert_ne!(Some(&wrong), params.get("response"));
    }
}
