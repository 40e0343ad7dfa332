//! Request bodies: read only after the caller is authenticated and allowed,
//! only as JSON, never past [`MAX_BODY_BYTES`], and parsed strictly (a
//! repeated key is refused, naming it).

use super::{ApiError, ApiState, MAX_BODY_BYTES};
use axum::body::{Body, Bytes};
use axum::http::{header, HeaderMap, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;

/// 415 unless the request says its body is JSON: `application/json`,
/// optionally with `charset=utf-8` (JSON is UTF-8). A missing Content-Type
/// is refused too, so a form post (`curl -d` without a header) is never
/// taken for an instruction.
pub(super) fn require_json(headers: &HeaderMap) -> Result<(), ApiError> {
    let given = headers.get(header::CONTENT_TYPE).map(|v| v.to_str().unwrap_or("(not text)"));
    let ok = given.is_some_and(|ct| {
        let mut parts = ct.split(';');
        parts.next().is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"))
            && parts.all(|param| match param.split_once('=') {
                Some((k, v)) if k.trim().eq_ignore_ascii_case("charset") => {
                    v.trim().trim_matches('"').eq_ignore_ascii_case("utf-8")
                }
                _ => true,
            })
    });
    if ok {
        return Ok(());
    }
    let error = match given {
        None => "send the body with Content-Type: application/json".to_string(),
        Some(ct) => format!("Content-Type must be application/json (charset utf-8), not {ct:?}"),
    };
    Err(ApiError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, error))
}

/// Reads a JSON request body, after the caller was authenticated and found
/// allowed: 415 for another Content-Type, 413 past [`MAX_BODY_BYTES`]
/// (declared or sent), 408 when it does not arrive within `api.idle_timeout`.
pub(super) async fn read_body(state: &ApiState, headers: &HeaderMap, body: Body) -> Result<Bytes, ApiError> {
    require_json(headers)?;
    let too_large = || {
        ApiError::too_large(
            "bytes_per_request",
            MAX_BODY_BYTES,
            format!("the request body exceeds {MAX_BODY_BYTES} bytes; split the batch"),
        )
    };
    let declared = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return Err(too_large());
    }
    let timeout = state.config.get().api.idle_timeout;
    let limited = http_body_util::Limited::new(body, MAX_BODY_BYTES);
    match tokio::time::timeout(timeout.0, limited.collect()).await {
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(too_large()),
        Ok(Err(e)) => Err(ApiError::field("body", format!("the request body could not be read: {e}"))),
        Err(_) => Err(ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            format!("the request body did not arrive within {timeout} (api.idle_timeout)"),
        )),
    }
}

/// Parses a body strictly ([`crate::json`]): 400 naming `body` when it is
/// not JSON, or the key an object repeats (with `index` in an array).
pub(super) fn parse_json(body: &[u8]) -> Result<Value, ApiError> {
    crate::json::from_slice(body).map_err(|e| match e {
        crate::json::JsonError::DuplicateKey { ref key, index } => {
            let err = ApiError::field(key, e.to_string());
            match index {
                Some(i) => err.at_index(i),
                None => err,
            }
        }
        crate::json::JsonError::Syntax(_) => ApiError::field("body", format!("request body is {e}")),
    })
}

/// A request body that must be a JSON object with only the `allowed` keys:
/// 400 naming `body` (with `shape`, the expected form), the unknown key, or
/// a repeated one.
pub(super) fn json_object(
    body: &[u8],
    allowed: &[&str],
    shape: &str,
) -> Result<serde_json::Map<String, Value>, ApiError> {
    let Value::Object(obj) = parse_json(body)? else { return Err(ApiError::field("body", shape)) };
    if let Some(k) = obj.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(ApiError::field(k, "unknown field"));
    }
    Ok(obj)
}
