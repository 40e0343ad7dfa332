//! The HTTP API (product-spec §4), on axum. Handlers validate input, check
//! the caller's role, and hand work to the engine; they never write state
//! themselves.

use crate::auth::{Permission, Role, Tokens};
use crate::config::Config;
use crate::event::{parse_event, Event, EventBody};
use crate::lifecycle::Resource;
use crate::scheduler::{ClockOp, EngineError, EngineHandle};
use crate::store::Store;
use crate::time::{fmt_rfc3339, parse_rfc3339};
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use std::sync::Arc;

/// What handlers share.
#[derive(Clone)]
pub struct ApiState {
    /// Sends work to the engine.
    pub engine: EngineHandle,
    /// Read access to state.
    pub store: Arc<dyn Store>,
    /// The config in force.
    pub config: Arc<Config>,
    /// Known tokens.
    pub tokens: Arc<Tokens>,
}

/// An error answer: `{"error":..,"field":..}`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    body: Value,
}

impl ApiError {
    fn new(status: StatusCode, error: impl Into<String>) -> Self {
        ApiError { status, body: json!({"error": error.into()}) }
    }
    fn field(field: &str, error: impl Into<String>) -> Self {
        ApiError { status: StatusCode::BAD_REQUEST, body: json!({"error": error.into(), "field": field}) }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body)).into_response()
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::ClockNotManual => ApiError::new(StatusCode::CONFLICT, e.to_string()),
            other => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, other.to_string()),
        }
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
    }
}

/// Builds the router.
pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/v1/events", post(post_events))
        .route("/v1/resources/{id}", get(get_resource))
        .route("/v1/admin/clock", post(post_clock))
        .layer(DefaultBodyLimit::max(16 * 1024 * 1024))
        .with_state(state)
}

/// The caller's role, or 401.
fn caller(state: &ApiState, headers: &HeaderMap) -> Result<Role, ApiError> {
    let token = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| ApiError::new(StatusCode::UNAUTHORIZED, "missing bearer token"))?;
    state
        .tokens
        .authenticate(token.trim())
        .map(|t| t.role)
        .ok_or_else(|| ApiError::new(StatusCode::UNAUTHORIZED, "unknown token"))
}

fn require(state: &ApiState, headers: &HeaderMap, p: Permission) -> Result<Role, ApiError> {
    let role = caller(state, headers)?;
    if role.allows(p) {
        Ok(role)
    } else {
        Err(ApiError::new(StatusCode::FORBIDDEN, format!("role {role:?} may not do this").to_lowercase()))
    }
}

fn permission_for(ev: &Event) -> Permission {
    match ev.body {
        EventBody::Created { .. } | EventBody::Renewed { .. } | EventBody::Released => Permission::PostBillingEvent,
    }
}

async fn post_events(State(state): State<ApiState>, headers: HeaderMap, body: Bytes) -> Result<Response, ApiError> {
    let role = caller(&state, &headers)?;
    let value: Value =
        serde_json::from_slice(&body).map_err(|e| ApiError::field("body", format!("request body is not JSON: {e}")))?;
    let (items, batch) = match value {
        Value::Array(items) => (items, true),
        one => (vec![one], false),
    };
    if items.is_empty() {
        return Err(ApiError::field("body", "no events in the request"));
    }
    let mut events = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let ev = parse_event(item).map_err(|e| {
            let mut err = ApiError::field(&e.field, e.error);
            if batch {
                err.body["index"] = json!(i);
            }
            err
        })?;
        if let EventBody::Created { product, .. } = &ev.body {
            if !state.config.products.contains_key(product) {
                let mut err = ApiError::field("product", format!("unknown product {product:?}"));
                if batch {
                    err.body["index"] = json!(i);
                }
                return Err(err);
            }
        }
        events.push(ev);
    }
    if let Some(ev) = events.iter().find(|e| !role.allows(permission_for(e))) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!(
                "role {} may not post {} events; nothing was stored",
                format!("{role:?}").to_lowercase(),
                ev.type_name()
            ),
        ));
    }
    let results = state.engine.ingest(events).await?;
    Ok(Json(json!({ "results": results })).into_response())
}

/// The resource view of product-spec §4.
pub fn resource_json(r: &Resource) -> Value {
    let copies: Vec<Value> = r
        .copies
        .iter()
        .map(|c| {
            json!({"store": c.store, "copy": c.copy, "class": c.class, "state": c.state,
                   "attempts": c.attempts, "next_attempt_at": c.next_attempt_at.map(fmt_rfc3339),
                   "last_error": c.last_error, "done_at": c.done_at.map(fmt_rfc3339)})
        })
        .collect();
    let history: Vec<Value> =
        r.history.iter().map(|h| json!({"at": fmt_rfc3339(h.at), "what": h.what, "detail": h.detail})).collect();
    json!({
        "resource": r.id, "tenant": r.tenant, "product": r.product, "billing": r.billing,
        "term_end": r.term_end.map(fmt_rfc3339),
        "state": r.state.as_str(), "cause": r.cause, "reason": r.reason,
        "buffer_started_at": r.buffer_started_at.map(fmt_rfc3339),
        "delete_after": r.delete_after.map(fmt_rfc3339),
        "policy_version": r.policy_version,
        "deletion_started_at": r.deletion_started_at.map(fmt_rfc3339),
        "holds": [],
        "copies": copies,
        "history": history,
    })
}

async fn get_resource(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    require(&state, &headers, Permission::Read)?;
    crate::ids::check_id(&id).map_err(|e| ApiError::field("resource", e))?;
    match state.store.resource(&id)? {
        Some(r) => Ok(Json(resource_json(&r)).into_response()),
        None => Err(ApiError::new(StatusCode::NOT_FOUND, format!("unknown resource {id:?}"))),
    }
}

async fn post_clock(State(state): State<ApiState>, headers: HeaderMap, body: Bytes) -> Result<Response, ApiError> {
    require(&state, &headers, Permission::MoveClock)?;
    let v: Value = serde_json::from_slice(&body).map_err(|e| ApiError::field("body", format!("not JSON: {e}")))?;
    let obj = v
        .as_object()
        .ok_or_else(|| ApiError::field("body", "expected {\"advance\":\"15d\"} or {\"set\":\"RFC3339\"}"))?;
    if let Some(k) = obj.keys().find(|k| *k != "advance" && *k != "set") {
        return Err(ApiError::field(k, "unknown field"));
    }
    let op = match (obj.get("advance"), obj.get("set")) {
        (Some(a), None) => {
            let s =
                a.as_str().ok_or_else(|| ApiError::field("advance", "must be a duration string such as \"15d\""))?;
            ClockOp::Advance(s.parse().map_err(|e: String| ApiError::field("advance", e))?)
        }
        (None, Some(t)) => {
            let s = t.as_str().ok_or_else(|| ApiError::field("set", "must be an RFC 3339 time"))?;
            ClockOp::Set(parse_rfc3339(s).map_err(|e| ApiError::field("set", e))?)
        }
        _ => return Err(ApiError::field("body", "give exactly one of \"advance\" or \"set\"")),
    };
    let now = state.engine.move_clock(op).await?;
    Ok(Json(json!({"now": fmt_rfc3339(now)})).into_response())
}
