//! Cross-cutting checks: request counting, header size, API keys.

use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use crate::state::AppState;
use crate::ServerError;

/// Count every response by route template and status.
pub async fn record(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let route = req.extensions().get::<MatchedPath>().map(|p| p.as_str().to_string());
    let resp = next.run(req).await;
    state.metrics.record_request(route.as_deref().unwrap_or("unmatched"), resp.status().as_u16());
    resp
}

/// Refuse long URIs and large request heads with an OpenAI-shaped error;
/// hyper's own (larger) limits answer a bare 414 or 431 beyond that.
pub async fn limit_headers(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let uri = req.uri().to_string().len();
    if uri > state.config.max_uri_bytes {
        return ServerError::UriTooLong { limit: state.config.max_uri_bytes }.into_response();
    }
    let limit = state.config.max_header_bytes;
    let size = uri + req.headers().iter().map(|(k, v)| k.as_str().len() + v.as_bytes().len() + 4).sum::<usize>();
    if size > limit {
        return ServerError::HeadersTooLarge { limit }.into_response();
    }
    next.run(req).await
}

/// Everything but `/health` needs a key when keys are configured, so load
/// balancers can probe without one.
pub async fn authenticate(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let keys = &state.config.api_keys;
    if keys.is_empty() || req.uri().path() == "/health" {
        return next.run(req).await;
    }
    let given = req.headers().get(header::AUTHORIZATION).and_then(|v| bearer(v.as_bytes()));
    match given {
        Some(key) if key_matches(keys, key) => next.run(req).await,
        _ => ServerError::Unauthorized.into_response(),
    }
}

fn bearer(value: &[u8]) -> Option<&[u8]> {
    let (scheme, rest) = value.split_at_checked(7)?;
    scheme.eq_ignore_ascii_case(b"bearer ").then(|| rest.trim_ascii())
}

/// Compare against every key in constant time per key; keys of another
/// length (a prefix, say) never match.
fn key_matches(keys: &[Vec<u8>], given: &[u8]) -> bool {
    let mut found = subtle::Choice::from(0);
    for k in keys {
        found |= k.as_slice().ct_eq(given);
    }
    found.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_match_exactly() {
        let keys = vec![b"secret-key-1".to_vec(), b"other".to_vec()];
        assert!(key_matches(&keys, b"secret-key-1"));
        assert!(key_matches(&keys, b"other"));
        assert!(!key_matches(&keys, b"secret-key-"));
        assert!(!key_matches(&keys, b"secret-key-12"));
        assert!(!key_matches(&keys, b""));
        assert_eq!(bearer(b"Bearer abc "), Some(&b"abc"[..]));
        assert_eq!(bearer(b"bearer abc"), Some(&b"abc"[..]));
        assert_eq!(bearer(b"Basic abc"), None);
        assert_eq!(bearer(b"Bear"), None);
    }
}
