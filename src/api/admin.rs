//! Operators' and admins' switches: the manual clock, pause and resume,
//! approve (a tripped guard, a clock anomaly), retry of stuck copies, and
//! applying a reloaded policy to running buffers.

use super::body::{json_object, parse_json, read_body};
use super::{require, ApiError, ApiState};
use crate::auth::{Permission, Role};
use crate::engine::ClockOp;
use crate::time::{fmt_rfc3339, parse_rfc3339};
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::{json, Value};

pub(super) async fn post_clock(
    State(state): State<ApiState>,
    Extension(role): Extension<Role>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    require(role, Permission::MoveClock)?;
    let body = read_body(&state, &headers, body).await?;
    let obj = json_object(&body, &["advance", "set"], "expected {\"advance\":\"15d\"} or {\"set\":\"RFC3339\"}")?;
    let op = match (obj.get("advance"), obj.get("set")) {
        (Some(a), None) => {
            let s =
                a.as_str().ok_or_else(|| ApiError::field("advance", "must be a duration string such as \"15d\""))?;
            ClockOp::Advance(s.parse().map_err(|e: String| ApiError::field("advance", e))?)
        }
        (None, Some(t)) => {
            let s = t.as_str().ok_or_else(|| ApiError::field("set", "must be an RFC 3339 time"))?;
            ClockOp::Set(parse_rfc3339(s).map_err(|e| ApiError::field("set", e.to_string()))?)
        }
        _ => return Err(ApiError::field("body", "give exactly one of \"advance\" or \"set\"")),
    };
    let now = state.engine.move_clock(op).await?;
    Ok(Json(json!({"now": fmt_rfc3339(now)})).into_response())
}

pub(super) async fn post_pause(
    State(state): State<ApiState>,
    Extension(role): Extension<Role>,
) -> Result<Response, ApiError> {
    require(role, Permission::Operate)?;
    state.engine.set_paused(true).await?;
    Ok(Json(json!({"paused": true})).into_response())
}

pub(super) async fn post_resume(
    State(state): State<ApiState>,
    Extension(role): Extension<Role>,
) -> Result<Response, ApiError> {
    require(role, Permission::Operate)?;
    state.engine.set_paused(false).await?;
    Ok(Json(json!({"paused": false})).into_response())
}

/// Lifts what stopped deletions by itself: a tripped mass-deletion guard and
/// a clock anomaly. Pause is lifted by resume.
/// `POST /v1/admin/approve`, optionally `{"batch_digest": HEX}`: lifts a
/// tripped guard, releasing exactly the batch it holds (refused with 409 if
/// the digest names another), and a clock anomaly. Answers what was lifted
/// and the batch's size and digest. An empty body needs no Content-Type.
pub(super) async fn post_approve(
    State(state): State<ApiState>,
    Extension(role): Extension<Role>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    require(role, Permission::Operate)?;
    let empty = headers.get(header::CONTENT_LENGTH).is_none_or(|v| v.as_bytes() == b"0")
        && headers.get(header::TRANSFER_ENCODING).is_none();
    let body = if empty { Bytes::new() } else { read_body(&state, &headers, body).await? };
    let digest = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        let obj = json_object(&body, &["batch_digest"], "expected {} or {\"batch_digest\":\"HEX\"}")?;
        match obj.get("batch_digest") {
            None | Some(Value::Null) => None,
            Some(Value::String(d)) => Some(d.clone()),
            Some(_) => return Err(ApiError::field("batch_digest", "must be a string")),
        }
    };
    let approval = state.engine.approve(digest).await?;
    Ok(Json(approval).into_response())
}

/// `POST /v1/admin/retry {"resource": ID, "store": optional}`: an operator
/// retries a resource's stuck copies.
pub(super) async fn post_retry(
    State(state): State<ApiState>,
    Extension(role): Extension<Role>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    require(role, Permission::Operate)?;
    let v = parse_json(&read_body(&state, &headers, body).await?)?;
    let resource = v["resource"].as_str().ok_or_else(|| ApiError::field("resource", "required"))?;
    crate::ids::check_stored_id(resource).map_err(|e| ApiError::field("resource", e))?;
    let store = match v.get("store") {
        None | Some(Value::Null) => None,
        Some(s) => Some(s.as_str().ok_or_else(|| ApiError::field("store", "must be a string"))?.to_string()),
    };
    let Some(r) = state.store.resource(resource)? else {
        return Err(ApiError::new(StatusCode::NOT_FOUND, format!("unknown resource {resource:?}")));
    };
    if let Some(s) = store.as_deref().filter(|s| !r.copies.iter().any(|c| c.store == *s)) {
        return Err(ApiError::field("store", format!("resource {resource:?} has no copy in store {s:?}")));
    }
    let retried = state.engine.retry(resource.to_string(), store).await?;
    Ok(Json(json!({ "retried": retried })).into_response())
}

/// `POST /v1/admin/apply-policy` `{"product":NAME}`: applies the product's
/// policy in force to its running buffers (operator; see
/// [`crate::domain::lifecycle::Resource::reapply_policy`] for the notice floor).
pub(super) async fn post_apply_policy(
    State(state): State<ApiState>,
    Extension(role): Extension<Role>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    require(role, Permission::Operate)?;
    let body = read_body(&state, &headers, body).await?;
    let obj = json_object(&body, &["product"], "expected {\"product\":\"NAME\"}")?;
    let product = obj.get("product").and_then(Value::as_str).ok_or_else(|| ApiError::field("product", "required"))?;
    crate::ids::check_id(product).map_err(|e| ApiError::field("product", e))?;
    let report = state.engine.apply_policy(product.to_string()).await?;
    Ok(Json(report).into_response())
}
