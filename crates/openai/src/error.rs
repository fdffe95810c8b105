use std::time::Duration;

/// Why a request to an OpenAI-compatible server failed, by whose fault.
#[derive(Debug, thiserror::Error)]
pub enum OpenAiError {
    /// The caller's mistake: the base URL cannot be used at all.
    #[error("bad endpoint URL {url:?}: {message}")]
    BadUrl { url: String, message: String },
    /// A fault in this client: the request could not be encoded.
    #[error("cannot send to {url}: {message}")]
    Internal { url: String, message: String },
    /// The remote refused the request as the client's mistake (4xx but 429).
    #[error("{url} refused the request ({status}): {message}")]
    Rejected { url: String, status: u16, message: String },
    /// The remote asked to come back later (429), with its Retry-After in
    /// whole seconds when it sent one.
    #[error("{url} is busy (429); retry later")]
    RateLimited { url: String, retry_after: Option<Duration> },
    /// The remote failed: a 5xx, an error mid-stream, or a body that is not
    /// an OpenAI stream (bad JSON, cut short).
    #[error("{url} failed: {message}")]
    Failed { url: String, status: Option<u16>, message: String },
    /// No HTTP answer: DNS, connect, TLS or the connection dropped early.
    #[error("{url} is unreachable: {message}")]
    Unreachable { url: String, message: String },
    /// The remote did not answer, or stopped streaming, within the timeout.
    #[error("{url} did not answer in time")]
    Timeout { url: String },
}

impl OpenAiError {
    /// The URL the request went to.
    pub fn url(&self) -> &str {
        match self {
            OpenAiError::BadUrl { url, .. }
            | OpenAiError::Internal { url, .. }
            | OpenAiError::Rejected { url, .. }
            | OpenAiError::RateLimited { url, .. }
            | OpenAiError::Failed { url, .. }
            | OpenAiError::Unreachable { url, .. }
            | OpenAiError::Timeout { url } => url,
        }
    }

    /// Classify what ureq reports for a request.
    pub(crate) fn from_ureq(url: &str, e: ureq::Error) -> OpenAiError {
        let url = url.to_string();
        match e {
            ureq::Error::Status(429, resp) => {
                let retry_after = resp.header("Retry-After").and_then(|v| v.trim().parse().ok());
                OpenAiError::RateLimited { url, retry_after: retry_after.map(Duration::from_secs) }
            }
            ureq::Error::Status(status, resp) => {
                let message = error_message(resp.into_string().unwrap_or_default());
                if (400..500).contains(&status) {
                    OpenAiError::Rejected { url, status, message }
                } else {
                    OpenAiError::Failed { url, status: Some(status), message: format!("HTTP {status}: {message}") }
                }
            }
            ureq::Error::Transport(t) => transport(url, t),
        }
    }

    /// An error while reading the body of a stream that had started.
    pub(crate) fn from_read(url: &str, e: std::io::Error) -> OpenAiError {
        match e.kind() {
            std::io::ErrorKind::TimedOut => OpenAiError::Timeout { url: url.into() },
            _ => OpenAiError::Failed { url: url.into(), status: None, message: format!("reading the stream: {e}") },
        }
    }
}

fn transport(url: String, t: ureq::Transport) -> OpenAiError {
    use ureq::ErrorKind as K;
    if timed_out(&t) {
        return OpenAiError::Timeout { url };
    }
    let message = t.to_string();
    match t.kind() {
        K::InvalidUrl | K::UnknownScheme | K::InsecureRequestHttpsOnly | K::InvalidProxyUrl => {
            OpenAiError::BadUrl { url, message }
        }
        // An answer that is not HTTP is the remote's failure, not a lost connection.
        K::BadStatus | K::BadHeader | K::TooManyRedirects => OpenAiError::Failed { url, status: None, message },
        _ => OpenAiError::Unreachable { url, message },
    }
}

/// ureq reports connect and read timeouts as an I/O error of kind `TimedOut`.
fn timed_out(t: &ureq::Transport) -> bool {
    let mut source = std::error::Error::source(t);
    while let Some(e) = source {
        if e.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut) {
            return true;
        }
        source = e.source();
    }
    false
}

/// OpenAI's `{"error": {"message": ...}}`, else the body as it came.
pub(crate) fn error_message(body: String) -> String {
    let parsed = serde_json::from_str::<serde_json::Value>(&body).ok();
    match parsed.as_ref().map(|v| &v["error"]) {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(e) => e["message"].as_str().map(str::to_string).unwrap_or(body),
        None => body,
    }
}

#[cfg(test)]
mod tests {
    use super::error_message;

    #[test]
    fn error_bodies_give_their_message() {
        assert_eq!(error_message(r#"{"error": {"message": "bad max_tokens"}}"#.into()), "bad max_tokens");
        assert_eq!(error_message(r#"{"error": "plain"}"#.into()), "plain");
        assert_eq!(error_message("not json".into()), "not json");
        assert_eq!(error_message(r#"{"detail": "x"}"#.into()), r#"{"detail": "x"}"#);
    }
}
