//! Operators' and admins' switches: the manual clock, pause and resume,
//! approve (a tripped guard, a clock anomaly), retry of stuck copies, and
//! applying a reloaded policy to running buffers.
//!
//! Each body is checked by hand, not by deserializing its [`super::wire`]
//! type, so a refusal names the field and says what is expected; the tests
//! prove that what ctl sends (the wire types) passes.

use super::body::{json_object, parse_json, read_body};
use super::wire::{
    ApplyPolicyRequest, Approval, ApproveRequest, BatchSummary, ClockAnswer, ClockRequest, ErrorBody, Paused,
    PolicyReport, Rescheduled, Retried, RetryRequest,
};
use super::{require, sorted, ApiError, ApiState};
use crate::auth::{Permission, Role};
use crate::engine::ClockOp;
use crate::time::{fmt_rfc3339, parse_rfc3339};
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::Value;

/// Move the manual clock.
///
/// `POST /v1/admin/clock` with `{"advance":"15d"}` or `{"set":RFC3339}`
/// (admin, manual clock only): answers the new reading once due work has run.
#[utoipa::path(
    post,
    path = "/v1/admin/clock",
    tag = "admin",
    request_body(content = ClockRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "The new reading, once the work due by then has run (or waits on a retry)",
            body = ClockAnswer),
        (status = 400, description = "Not exactly one of `advance` (a duration such as `15d`) and `set` (RFC 3339), \
            or a move out of range: `field` names it", body = ErrorBody),
        (status = 403, description = "Only an admin moves the clock", body = ErrorBody),
        (status = 408, description = "The body did not arrive within `[api] idle_timeout`", body = ErrorBody),
        (status = 409, description = "The clock is not manual (`[clock] source`)", body = ErrorBody),
        (status = 413, description = "The body is over 1 MiB", body = ErrorBody),
        (status = 415, description = "The body is not sent as `application/json`", body = ErrorBody),
        (status = 503, description = "The engine is unavailable (stopping, or a write failed)", body = ErrorBody),
    ),
)]
pub(super) async fn post_clock(
    State(state): State<ApiState>,
    Extension(role): Extension<Role>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    require(role, Permission::MoveClock)?;
    let op = clock_op(&read_body(&state, &headers, body).await?)?;
    let now = state.engine.move_clock(op).await?;
    Ok(sorted(&ClockAnswer { now: fmt_rfc3339(now) })?.into_response())
}

/// The move a [`super::wire::ClockRequest`] body asks for.
fn clock_op(body: &[u8]) -> Result<ClockOp, ApiError> {
    let obj = json_object(body, &["advance", "set"], "expected {\"advance\":\"15d\"} or {\"set\":\"RFC3339\"}")?;
    Ok(match (obj.get("advance"), obj.get("set")) {
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
    })
}

/// Pause deletions.
///
/// `POST /v1/admin/pause`: no deletion starts and no executor is called
/// until resumed (any body is ignored).
#[utoipa::path(
    post,
    path = "/v1/admin/pause",
    tag = "admin",
    responses(
        (status = 200, description = "Paused, durably", body = Paused),
        (status = 403, description = "Only an operator or admin pauses", body = ErrorBody),
        (status = 503, description = "The engine is unavailable (stopping, or a write failed)", body = ErrorBody),
    ),
)]
pub(super) async fn post_pause(state: State<ApiState>, role: Extension<Role>) -> Result<Response, ApiError> {
    set_paused(state, role, true).await
}

/// Resume deletions.
///
/// `POST /v1/admin/resume`: undoes a pause (any body is ignored).
#[utoipa::path(
    post,
    path = "/v1/admin/resume",
    tag = "admin",
    responses(
        (status = 200, description = "Resumed, durably", body = Paused),
        (status = 403, description = "Only an operator or admin resumes", body = ErrorBody),
        (status = 503, description = "The engine is unavailable (stopping, or a write failed)", body = ErrorBody),
    ),
)]
pub(super) async fn post_resume(state: State<ApiState>, role: Extension<Role>) -> Result<Response, ApiError> {
    set_paused(state, role, false).await
}

/// Pause and resume: an operator's switch, answered once it is durable.
async fn set_paused(
    State(state): State<ApiState>,
    Extension(role): Extension<Role>,
    paused: bool,
) -> Result<Response, ApiError> {
    require(role, Permission::Operate)?;
    state.engine.set_paused(paused).await?;
    Ok(sorted(&Paused { paused })?.into_response())
}

/// Approve a held batch or a clock anomaly.
///
/// Lifts what stopped deletions by itself: a tripped mass-deletion guard and
/// a clock anomaly. Pause is lifted by resume.
/// `POST /v1/admin/approve`, optionally `{"batch_digest": HEX}`: lifts a
/// tripped guard, releasing exactly the batch it holds (refused with 409 if
/// the digest names another), and a clock anomaly. Answers what was lifted
/// and the batch's size and digest. An empty body needs no Content-Type.
#[utoipa::path(
    post,
    path = "/v1/admin/approve",
    tag = "admin",
    request_body(content = Option<ApproveRequest>, content_type = "application/json",
        description = "Optional: an empty body approves whatever is held"),
    responses(
        (status = 200, description = "What was lifted (`guard`, `clock_anomaly`), and the batch released",
            body = Approval),
        (status = 400, description = "Not JSON, not an object, an unknown key, or `batch_digest` not a string: \
            `field` names it", body = ErrorBody),
        (status = 403, description = "Only an operator or admin approves", body = ErrorBody),
        (status = 408, description = "The body did not arrive within `[api] idle_timeout`", body = ErrorBody),
        (status = 409, description = "`batch_digest` names another batch than the one held", body = ErrorBody),
        (status = 413, description = "The body is over 1 MiB", body = ErrorBody),
        (status = 415, description = "A body not sent as `application/json`", body = ErrorBody),
        (status = 503, description = "The engine is unavailable (stopping, or a write failed)", body = ErrorBody),
    ),
)]
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
    let approval = state.engine.approve(batch_digest(&body)?).await?;
    // Declared order, as the engine's struct always went out.
    Ok(Json(Approval::from(approval)).into_response())
}

/// The digest an [`super::wire::ApproveRequest`] body names, if any (an
/// empty or blank body names none).
fn batch_digest(body: &[u8]) -> Result<Option<String>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let obj = json_object(body, &["batch_digest"], "expected {} or {\"batch_digest\":\"HEX\"}")?;
    match obj.get("batch_digest") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(d)) => Ok(Some(d.clone())),
        Some(_) => Err(ApiError::field("batch_digest", "must be a string")),
    }
}

impl From<crate::engine::Approval> for Approval {
    fn from(a: crate::engine::Approval) -> Self {
        Approval {
            approved: a.approved.into_iter().map(str::to_string).collect(),
            batch: a.batch.map(|b| BatchSummary { size: b.size as u64, digest: b.digest }),
        }
    }
}

/// Retry a resource's stuck copies.
///
/// `POST /v1/admin/retry {"resource": ID, "store": optional}`: an operator
/// retries a resource's stuck copies.
#[utoipa::path(
    post,
    path = "/v1/admin/retry",
    tag = "admin",
    request_body(content = RetryRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "How many stuck copies are called again", body = Retried),
        (status = 400, description = "Not JSON, `resource` missing or not an id, `store` not a string or not a \
            store of the resource: `field` names it", body = ErrorBody),
        (status = 403, description = "Only an operator or admin retries", body = ErrorBody),
        (status = 404, description = "No such resource", body = ErrorBody),
        (status = 408, description = "The body did not arrive within `[api] idle_timeout`", body = ErrorBody),
        (status = 413, description = "The body is over 1 MiB", body = ErrorBody),
        (status = 415, description = "The body is not sent as `application/json`", body = ErrorBody),
        (status = 503, description = "The engine or the store is unavailable", body = ErrorBody),
    ),
)]
pub(super) async fn post_retry(
    State(state): State<ApiState>,
    Extension(role): Extension<Role>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    require(role, Permission::Operate)?;
    let (resource, store) = retry_target(&read_body(&state, &headers, body).await?)?;
    let found = {
        let id = resource.clone();
        state.read(move |s| Ok(s.resource(&id)?)).await?
    };
    let Some(r) = found else {
        return Err(ApiError::new(StatusCode::NOT_FOUND, format!("unknown resource {resource:?}")));
    };
    if let Some(s) = store.as_deref().filter(|s| !r.copies.iter().any(|c| c.store == *s)) {
        return Err(ApiError::field("store", format!("resource {resource:?} has no copy in store {s:?}")));
    }
    let retried = state.engine.retry(resource, store).await?;
    Ok(sorted(&Retried { retried: retried as u64 })?.into_response())
}

/// The resource and store a [`super::wire::RetryRequest`] body names.
fn retry_target(body: &[u8]) -> Result<(String, Option<String>), ApiError> {
    let v = parse_json(body)?;
    let resource = v["resource"].as_str().ok_or_else(|| ApiError::field("resource", "required"))?;
    crate::ids::check_stored_id(resource).map_err(|e| ApiError::field("resource", e))?;
    let store = match v.get("store") {
        None | Some(Value::Null) => None,
        Some(s) => Some(s.as_str().ok_or_else(|| ApiError::field("store", "must be a string"))?.to_string()),
    };
    Ok((resource.to_string(), store))
}

/// Retry a subject's stuck personal-store calls.
///
/// `POST /v1/admin/retry-subject {"tenant": ID, "subject": ID, "store":
/// optional}` (issue 12): as `/v1/admin/retry`, for personal data.
#[utoipa::path(
    post,
    path = "/v1/admin/retry-subject",
    tag = "admin",
    request_body(content = super::wire::RetrySubjectRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "How many stuck calls are made again", body = Retried),
        (status = 400, description = "Not JSON, `tenant` or `subject` missing or not an id, `store` not a string \
            or not a store of the subject's classes: `field` names it", body = ErrorBody),
        (status = 403, description = "Only an operator or admin retries", body = ErrorBody),
        (status = 404, description = "No such subject of that tenant", body = ErrorBody),
        (status = 408, description = "The body did not arrive within `[api] idle_timeout`", body = ErrorBody),
        (status = 413, description = "The body is over 1 MiB", body = ErrorBody),
        (status = 415, description = "The body is not sent as `application/json`", body = ErrorBody),
        (status = 503, description = "The engine or the store is unavailable", body = ErrorBody),
    ),
)]
pub(super) async fn post_retry_subject(
    State(state): State<ApiState>,
    Extension(role): Extension<Role>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    require(role, Permission::Operate)?;
    let v = parse_json(&read_body(&state, &headers, body).await?)?;
    let id = |field: &str| -> Result<String, ApiError> {
        let s = v[field].as_str().ok_or_else(|| ApiError::field(field, "required"))?;
        crate::ids::check_stored_id(s).map_err(|e| ApiError::field(field, e))?;
        Ok(s.to_string())
    };
    let key = crate::store::SubjectKey { tenant: id("tenant")?, subject: id("subject")? };
    let store = match v.get("store") {
        None | Some(Value::Null) => None,
        Some(s) => Some(s.as_str().ok_or_else(|| ApiError::field("store", "must be a string"))?.to_string()),
    };
    let found = {
        let key = key.clone();
        state.read(move |s| Ok(s.subject(&key)?)).await?
    };
    let Some(subject) = found else {
        return Err(ApiError::new(StatusCode::NOT_FOUND, "no such subject of that tenant".to_string()));
    };
    let has = |s: &str| subject.classes.iter().any(|c| c.copies.iter().any(|p| p.store == s));
    if let Some(s) = store.as_deref().filter(|s| !has(s)) {
        return Err(ApiError::field("store", format!("the subject has no data in store {s:?}")));
    }
    let retried = state.engine.retry_subject(key, store).await?;
    Ok(sorted(&Retried { retried: retried as u64 })?.into_response())
}

/// Apply a reloaded policy to running buffers.
///
/// `POST /v1/admin/apply-policy` `{"product":NAME}`: applies the product's
/// policy in force to its running buffers (operator; see
/// [`crate::domain::lifecycle::Resource::reapply_policy`] for the notice floor).
#[utoipa::path(
    post,
    path = "/v1/admin/apply-policy",
    tag = "admin",
    request_body(content = ApplyPolicyRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "The deadlines moved, and how many resources were left as they were",
            body = PolicyReport),
        (status = 400, description = "Not JSON, an unknown key, `product` missing, not an id or not configured: \
            `field` names it", body = ErrorBody),
        (status = 403, description = "Only an operator or admin applies a policy", body = ErrorBody),
        (status = 408, description = "The body did not arrive within `[api] idle_timeout`", body = ErrorBody),
        (status = 413, description = "The body is over 1 MiB", body = ErrorBody),
        (status = 415, description = "The body is not sent as `application/json`", body = ErrorBody),
        (status = 503, description = "The engine is unavailable (stopping, or a write failed)", body = ErrorBody),
    ),
)]
pub(super) async fn post_apply_policy(
    State(state): State<ApiState>,
    Extension(role): Extension<Role>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    require(role, Permission::Operate)?;
    let product = policy_product(&read_body(&state, &headers, body).await?)?;
    let report = state.engine.apply_policy(product).await?;
    // Declared order, as the engine's struct always went out.
    Ok(Json(PolicyReport::from(report)).into_response())
}

/// The product an [`super::wire::ApplyPolicyRequest`] body names.
fn policy_product(body: &[u8]) -> Result<String, ApiError> {
    let obj = json_object(body, &["product"], "expected {\"product\":\"NAME\"}")?;
    let product = obj.get("product").and_then(Value::as_str).ok_or_else(|| ApiError::field("product", "required"))?;
    crate::ids::check_id(product).map_err(|e| ApiError::field("product", e))?;
    Ok(product.to_string())
}

impl From<crate::engine::PolicyReport> for PolicyReport {
    fn from(r: crate::engine::PolicyReport) -> Self {
        PolicyReport {
            product: r.product,
            policy_version: r.policy_version,
            rescheduled: r
                .rescheduled
                .into_iter()
                .map(|m| Rescheduled { resource: m.resource, from: m.from, to: m.to })
                .collect(),
            unchanged: r.unchanged,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::wire::NoArguments;
    use super::*;

    fn bytes<T: serde::Serialize>(body: &T) -> Vec<u8> {
        serde_json::to_vec(body).unwrap()
    }

    /// What ctl sends passes the checks each handler makes, and means what
    /// ctl meant.
    #[test]
    fn the_bodies_ctl_sends_are_accepted() {
        let advance = clock_op(&bytes(&ClockRequest::Advance("15d".into()))).unwrap();
        let fifteen_days: crate::duration::Dur = "15d".parse().unwrap();
        assert!(matches!(advance, ClockOp::Advance(d) if d == fifteen_days), "{advance:?}");
        let set = clock_op(&bytes(&ClockRequest::Set("2026-02-01T00:00:00Z".into()))).unwrap();
        assert!(matches!(set, ClockOp::Set(t) if fmt_rfc3339(t) == "2026-02-01T00:00:00Z"), "{set:?}");

        assert_eq!(batch_digest(&bytes(&ApproveRequest::default())).unwrap(), None);
        let named = ApproveRequest { batch_digest: Some("ab12".into()) };
        assert_eq!(batch_digest(&bytes(&named)).unwrap().as_deref(), Some("ab12"));
        // Pause and resume ignore their body; approve reads `{}` as naming no batch.
        assert_eq!(batch_digest(&bytes(&NoArguments {})).unwrap(), None);

        let every = RetryRequest { resource: "r1".into(), store: None };
        assert_eq!(retry_target(&bytes(&every)).unwrap(), ("r1".to_string(), None));
        let one = RetryRequest { resource: "r1".into(), store: Some("primary".into()) };
        assert_eq!(retry_target(&bytes(&one)).unwrap(), ("r1".to_string(), Some("primary".to_string())));

        let apply = ApplyPolicyRequest { product: "ecs".into() };
        assert_eq!(policy_product(&bytes(&apply)).unwrap(), "ecs");
    }
}
