//! A JSON body extractor whose every rejection is an OpenAI-shaped error,
//! and which enforces the body limit while reading.

use axum::extract::{FromRequest, Request};
use axum::http::header;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde::de::DeserializeOwned;
use serde_json::error::Category;

use crate::state::AppState;
use crate::ServerError;

/// The request body, parsed as `T`.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for ApiJson<T> {
    type Rejection = ServerError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        check_content_type(&req)?;
        let limit = state.config.max_body_bytes;
        // Refuse a declared oversize body before reading a byte of it.
        let declared = req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        if declared.is_some_and(|n| n > limit as u64) {
            return Err(ServerError::BodyTooLarge { limit });
        }
        let body = Limited::new(req.into_body(), limit).collect().await.map_err(|e| {
            if e.downcast_ref::<LengthLimitError>().is_some() {
                ServerError::BodyTooLarge { limit }
            } else {
                ServerError::BodyRead(e.to_string())
            }
        })?;
        parse(&body.to_bytes()).map(ApiJson)
    }
}

fn check_content_type(req: &Request) -> Result<(), ServerError> {
    let ct = req.headers().get(header::CONTENT_TYPE).map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let Some(ct) = ct else {
        return Err(ServerError::UnsupportedMediaType(String::new()));
    };
    let essence = ct.split(';').next().unwrap_or("").trim();
    if essence.eq_ignore_ascii_case("application/json") {
        Ok(())
    } else {
        Err(ServerError::UnsupportedMediaType(ct))
    }
}

/// Parse a JSON body, naming the offending field on type errors.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ServerError> {
    if std::str::from_utf8(bytes).is_err() {
        return Err(ServerError::InvalidUtf8);
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(path_error)?;
    de.end().map_err(|e| ServerError::InvalidJson(e.to_string()))?;
    Ok(value)
}

fn path_error(e: serde_path_to_error::Error<serde_json::Error>) -> ServerError {
    let path = e.path().to_string();
    let inner = e.into_inner();
    match inner.classify() {
        Category::Syntax | Category::Eof | Category::Io => ServerError::InvalidJson(inner.to_string()),
        Category::Data => {
            let param = (path != ".").then_some(path);
            let message = match &param {
                Some(p) => format!("invalid value for `{p}`: {inner}"),
                None => format!("invalid request body: {inner}"),
            };
            ServerError::InvalidBody { param, message }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct T {
        a: u32,
        b: Option<Vec<String>>,
    }

    #[test]
    fn classifies_errors() {
        assert!(matches!(parse::<T>(b"{\"a\": 1"), Err(ServerError::InvalidJson(_))));
        assert!(matches!(parse::<T>(b"{\"a\": 1} x"), Err(ServerError::InvalidJson(_))));
        assert!(matches!(parse::<T>(b"{\"a\": \"\xff\"}"), Err(ServerError::InvalidUtf8)));
        match parse::<T>(b"{\"a\": 1, \"b\": [1]}") {
            Err(ServerError::InvalidBody { param, .. }) => assert_eq!(param.as_deref(), Some("b[0]")),
            other => panic!("{other:?}"),
        }
        match parse::<T>(b"{\"a\": 1, \"c\": 2}") {
            Err(ServerError::InvalidBody { message, .. }) => assert!(message.contains("unknown field `c`")),
            other => panic!("{other:?}"),
        }
        assert!(parse::<T>(b"{\"a\": 1}").is_ok());
    }
}
