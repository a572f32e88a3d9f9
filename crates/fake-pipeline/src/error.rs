//! [`ApiError`]: a refusal as an OpenAI-compatible server sends it, a status and the
//! `{"error":{"message","type","param","code"}}` body.

use serde_json::json;

/// An error response: what the fake answers a request a real server would refuse, or an
/// injected failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status} {kind}: {message}")]
pub struct ApiError {
    /// HTTP status.
    pub status: u16,
    /// `error.type`: `invalid_request_error`, `server_error`, …
    pub kind: String,
    /// `error.message`.
    pub message: String,
    /// `error.param`: the request field at fault, when one is.
    pub param: Option<String>,
    /// `error.code`: `invalid_api_key`, `audio_too_short`, …
    pub code: Option<String>,
}

impl ApiError {
    /// A 400 `invalid_request_error` about `param`.
    pub fn invalid(param: Option<&str>, message: impl Into<String>) -> ApiError {
        ApiError {
            status: 400,
            kind: "invalid_request_error".into(),
            message: message.into(),
            param: param.map(str::to_owned),
            code: None,
        }
    }

    /// The same with an `error.code`.
    pub fn with_code(mut self, code: &str) -> ApiError {
        self.code = Some(code.into());
        self
    }

    /// The same with another status.
    pub fn with_status(mut self, status: u16) -> ApiError {
        self.status = status;
        self
    }

    /// What an OpenAI-compatible server says with `status` when it fails (500, 503),
    /// refuses the key (401) or throttles (429); any other status gets a generic text.
    pub fn for_status(status: u16) -> ApiError {
        let (kind, message, code) = match status {
            401 => ("invalid_request_error", "Incorrect API key provided.", Some("invalid_api_key")),
            403 => ("invalid_request_error", "You are not allowed to use this model.", None),
            404 => ("invalid_request_error", "The model does not exist.", Some("model_not_found")),
            429 => ("requests", "Rate limit reached for requests.", Some("rate_limit_exceeded")),
            500 => ("server_error", "The server had an error while processing your request.", None),
            502 => ("server_error", "Bad gateway.", None),
            503 => ("server_error", "The engine is currently overloaded, please try again later.", None),
            _ => ("server_error", "The fake was told to fail this request.", None),
        };
        ApiError {
            status,
            kind: kind.into(),
            message: message.into(),
            param: None,
            code: code.map(str::to_owned),
        }
    }

    /// The JSON body.
    pub fn body(&self) -> String {
        json!({"error": {
            "message": self.message,
            "type": self.kind,
            "param": self.param,
            "code": self.code,
        }})
        .to_string()
    }
}
