//! The HTTP API (product-spec §4), on axum. Handlers validate input, check
//! the caller's role, and hand work to the engine; they never write state
//! themselves.

use crate::auth::{Permission, Role, Tokens};
use crate::clock::Clock;
use crate::config::{Config, Shared};
use crate::domain::event::{parse_event, Event, EventBody};
use crate::domain::lifecycle::{Buffer, Resource, State as ResourceState};
use crate::domain::policy::ProductPolicy;
use crate::engine::{ClockOp, EngineError, EngineHandle};
use crate::store::{Flag, Store};
use crate::time::Timestamp;
use crate::time::{fmt_rfc3339, parse_rfc3339};
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{from_fn_with_state, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use http_body_util::BodyExt;
use rust_decimal::Decimal;
use serde_json::{json, Value};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

/// The most events one `POST /v1/events` may carry (413 above). The engine
/// applies a request's events in one step, so this bounds how long one
/// client's request can hold up everyone else's (issue 9: a batch of 56,000
/// blocked every other client for 13 s).
pub const MAX_EVENTS_PER_REQUEST: usize = 1_000;

/// The largest request body accepted, in bytes (413 above): 1 MiB, several
/// times what [`MAX_EVENTS_PER_REQUEST`] events take. A body is read only
/// after its sender is authenticated and allowed, and never past this.
pub const MAX_BODY_BYTES: usize = 1 << 20;

/// What handlers share.
#[derive(Clone)]
pub struct ApiState {
    /// Sends work to the engine.
    pub engine: EngineHandle,
    /// Read access to state.
    pub store: Arc<dyn Store>,
    /// The config in force (swapped on reload).
    pub config: Arc<Shared<Config>>,
    /// Known tokens (swapped on reload).
    pub tokens: Arc<Shared<Tokens>>,
    /// The daemon's clock (for "as of now" views).
    pub clock: Arc<dyn Clock>,
    /// The outcome of the last reload (`GET /readyz`), set by the daemon.
    pub last_reload: Arc<std::sync::Mutex<Option<Value>>>,
    /// The audit log, for `GET /v1/audit`.
    pub audit: Arc<std::sync::Mutex<crate::audit::AuditLog>>,
    /// Counters for `GET /metrics`, shared with the engine.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Failed authentications per source, for the lock-out (429).
    pub auth_failures: Arc<std::sync::Mutex<crate::auth::AuthFailures>>,
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
    /// 413 naming the limit (`events_per_request` or `bytes_per_request`) and its value.
    fn too_large(limit: &str, max: usize, error: String) -> Self {
        ApiError { status: StatusCode::PAYLOAD_TOO_LARGE, body: json!({"error": error, "limit": limit, "max": max}) }
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
            EngineError::ClockRange => ApiError::field("advance", e.to_string()),
            EngineError::UnknownProduct(_) => ApiError::field("product", e.to_string()),
            EngineError::BatchMismatch { .. } => ApiError::new(StatusCode::CONFLICT, e.to_string()),
            other => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, other.to_string()),
        }
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
    }
}

/// Builds the router. Every route but `/healthz` goes through
/// [`authenticate`] first, so no handler runs, and no body is read, for a
/// caller without a valid token.
pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/v1/events", post(post_events))
        .route("/v1/resources/{id}", get(get_resource))
        .route("/v1/admin/clock", post(post_clock))
        .route("/v1/admin/pause", post(post_pause))
        .route("/v1/admin/resume", post(post_resume))
        .route("/v1/admin/approve", post(post_approve))
        .route("/v1/deletions", get(get_deletions))
        .route("/v1/restore-check", get(get_restore_check))
        .route("/v1/audit", get(get_audit))
        .route("/v1/certificates/{id}", get(get_certificate))
        .route("/v1/admin/retry", post(post_retry))
        .route("/v1/admin/apply-policy", post(post_apply_policy))
        .route("/readyz", get(get_readyz))
        .route("/metrics", get(get_metrics))
        .route_layer(from_fn_with_state(state.clone(), authenticate))
        .route("/healthz", get(|| async { "ok\n" }))
        .with_state(state)
}

/// Authenticates from the headers alone, before any handler runs or any
/// body is read (issue 9: unauthenticated 15 MB bodies were buffered).
/// A source locked out for failing too often gets 429 without its token
/// being looked at; a refused token counts toward its lock-out. On success
/// the caller's [`Role`] goes to the handler as an extension.
async fn authenticate(State(state): State<ApiState>, mut req: Request, next: Next) -> Response {
    let source = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |ConnectInfo(peer)| peer.ip());
    let now = std::time::Instant::now();
    let locked = state.auth_failures.lock().unwrap_or_else(|e| e.into_inner()).check(source, now);
    if let Err(wait) = locked {
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        let error = format!("too many failed authentications from this address; try again in {secs} s");
        let mut resp = ApiError::new(StatusCode::TOO_MANY_REQUESTS, error).into_response();
        resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        return resp;
    }
    match caller(&state, req.headers()) {
        Ok(role) => {
            req.extensions_mut().insert(role);
            next.run(req).await
        }
        Err(e) => {
            let api = &state.config.get().api;
            let mut table = state.auth_failures.lock().unwrap_or_else(|e| e.into_inner());
            table.failed(source, now, api.max_auth_failures, api.auth_lockout.0);
            e.into_response()
        }
    }
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
        .get()
        .authenticate(token.trim())
        .map(|t| t.role)
        .ok_or_else(|| ApiError::new(StatusCode::UNAUTHORIZED, "unknown token"))
}

/// 403 unless `role` may do `p`.
fn require(role: Role, p: Permission) -> Result<(), ApiError> {
    if role.allows(p) {
        Ok(())
    } else {
        Err(ApiError::new(StatusCode::FORBIDDEN, format!("role {role:?} may not do this").to_lowercase()))
    }
}

/// 415 unless the request says its body is JSON: `application/json`,
/// optionally with `charset=utf-8` (JSON is UTF-8). A missing Content-Type
/// is refused too, so a form post (`curl -d` without a header) is never
/// taken for an instruction.
fn require_json(headers: &HeaderMap) -> Result<(), ApiError> {
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
async fn read_body(state: &ApiState, headers: &HeaderMap, body: Body) -> Result<Bytes, ApiError> {
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
fn parse_json(body: &[u8]) -> Result<Value, ApiError> {
    crate::json::from_slice(body).map_err(|e| match e {
        crate::json::JsonError::DuplicateKey { ref key, index } => {
            let mut err = ApiError::field(key, e.to_string());
            if let Some(i) = index {
                err.body["index"] = json!(i);
            }
            err
        }
        crate::json::JsonError::Syntax(_) => ApiError::field("body", format!("request body is {e}")),
    })
}

fn permission_for(ev: &Event) -> Permission {
    if ev.is_operator_event() {
        Permission::PostOperatorEvent
    } else {
        Permission::PostBillingEvent
    }
}

async fn post_events(
    State(state): State<ApiState>,
    Extension(role): Extension<Role>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    // Every role but auditor may post some events: refused before the body is read.
    require(role, Permission::PostBillingEvent)?;
    let body = read_body(&state, &headers, body).await?;
    let value = parse_json(&body).inspect_err(|_| state.metrics.invalid_event(None))?;
    let (items, batch) = match value {
        Value::Array(items) => (items, true),
        one => (vec![one], false),
    };
    if items.is_empty() {
        return Err(ApiError::field("body", "no events in the request"));
    }
    if items.len() > MAX_EVENTS_PER_REQUEST {
        return Err(ApiError::too_large(
            "events_per_request",
            MAX_EVENTS_PER_REQUEST,
            format!(
                "{} events in one request; at most {MAX_EVENTS_PER_REQUEST} are accepted: split the batch",
                items.len()
            ),
        ));
    }
    let mut events = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let ev = check_event(&state.config.get(), item).map_err(|mut err| {
            state.metrics.invalid_event(Some(item));
            if batch {
                err.body["index"] = json!(i);
            }
            err
        })?;
        events.push(ev);
    }
    if let Some(ev) = events.iter().find(|e| !role.allows(permission_for(e))) {
        let what = match ev.body {
            // general terms 7.5.2: it may purge at once; an operator decides.
            EventBody::Terminated { reason: crate::domain::policy::TerminationReason::Violation } => {
                "resource.terminated events for reason violation (it may purge at once: an operator decides)"
                    .to_string()
            }
            _ => format!("{} events", ev.type_name()),
        };
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!("role {} may not post {what}; nothing was stored", format!("{role:?}").to_lowercase()),
        ));
    }
    let results = state.engine.ingest(events).await?;
    Ok(Json(json!({ "results": results })).into_response())
}

fn buffer_json(b: &Buffer) -> Value {
    let mut v = json!({"cause": b.cause, "reason": b.reason, "started_at": fmt_rfc3339(b.started_at),
                       "delete_after": fmt_rfc3339(b.delete_after), "policy_version": b.policy_version});
    if let Some(f) = b.late_floor {
        // The event came late: the deadline was lifted to this floor.
        v["late_event_floor"] = json!(fmt_rfc3339(f));
    }
    v
}

/// Parses one event and checks what needs the config (known product,
/// backup store): a 400 naming the field, before anything is stored.
fn check_event(config: &Config, item: &Value) -> Result<Event, ApiError> {
    let ev = parse_event(item).map_err(|e| ApiError::field(&e.field, e.error))?;
    if let EventBody::BackupCreated { store, .. } | EventBody::BackupDeleted { store, .. } = &ev.body {
        if config.stores.get(store).is_none_or(|s| s.class != crate::domain::policy::StoreClass::Backup) {
            return Err(ApiError::field("store", format!("{store:?} is not a configured store of class backup")));
        }
    }
    if let EventBody::Created { product, .. } = &ev.body {
        if !config.products.contains_key(product) {
            return Err(ApiError::field("product", format!("unknown product {product:?}")));
        }
    }
    Ok(ev)
}

/// The resource view of product-spec §4, as of `now` (for the late fee).
pub fn resource_json(r: &Resource, policy: Option<&ProductPolicy>, now: Timestamp) -> Value {
    let copies: Vec<Value> = r
        .copies
        .iter()
        .map(|c| {
            json!({"store": c.store, "copy": c.copy, "class": c.class, "state": c.state, "stuck": c.stuck,
                   "attempts": c.attempts, "next_attempt_at": c.next_attempt_at.map(fmt_rfc3339),
                   "last_error": c.last_error, "done_at": c.done_at.map(fmt_rfc3339),
                   "expires_at": c.expires_at.map(fmt_rfc3339), "outcome": c.outcome})
        })
        .collect();
    let history: Vec<Value> =
        r.history.iter().map(|h| json!({"at": fmt_rfc3339(h.at), "what": h.what, "detail": h.detail})).collect();
    let holds: Vec<Value> = r
        .holds
        .iter()
        .map(|h| {
            json!({"hold_id": h.hold_id, "authority": h.authority, "reason": h.reason,
                   "scope": if h.tenant_wide { "tenant" } else { "resource" }, "placed_at": fmt_rfc3339(h.placed_at)})
        })
        .collect();
    let arrears = r.arrears.as_ref().map(|a| {
        let mut v = json!({"started_at": fmt_rfc3339(a.started_at), "amount": a.amount, "currency": a.currency,
                           "buffer": a.buffer.as_ref().map(buffer_json)});
        if let Some(p) = policy {
            if let Some((fee, days)) = r.late_fee(p.late_fee_per_day, now) {
                v["late_fee"] = json!(fee);
                v["late_fee_days"] = json!(days);
                if let Some(percent) = p.late_fee_per_day.checked_mul(Decimal::ONE_HUNDRED) {
                    v["late_fee_per_day"] = json!(format!("{}%", percent.normalize()));
                }
            }
        }
        v
    });
    let termination = r
        .termination
        .as_ref()
        .map(|t| json!({"at": fmt_rfc3339(t.at), "reason": t.reason, "buffer": t.buffer.as_ref().map(buffer_json)}));
    let d = r.deciding.as_ref();
    json!({
        "resource": r.id, "tenant": r.tenant, "product": r.product, "billing": r.billing,
        "created_at": fmt_rfc3339(r.created_at),
        "term_end": r.term_end.map(fmt_rfc3339),
        "state": r.state.as_str(),
        "cause": d.map(|b| b.cause), "reason": d.and_then(|b| b.reason),
        "buffer_started_at": d.map(|b| fmt_rfc3339(b.started_at)),
        "delete_after": d.map(|b| fmt_rfc3339(b.delete_after)),
        "policy_version": d.map(|b| b.policy_version.clone()),
        "not_before": r.not_before.filter(|_| d.is_some()).map(fmt_rfc3339),
        "deletion_started_at": r.deletion_started_at.map(fmt_rfc3339),
        "buffers": {
            "expiry": r.expiry.as_ref().map(buffer_json),
            "release": r.release.as_ref().map(buffer_json),
        },
        "arrears": arrears,
        "termination": termination,
        "holds": holds,
        "copies": copies,
        "history": history,
    })
}

async fn get_resource(
    State(state): State<ApiState>,
    Extension(role): Extension<Role>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    require(role, Permission::Read)?;
    crate::ids::check_stored_id(&id).map_err(|e| ApiError::field("resource", e))?;
    match state.store.resource(&id)? {
        Some(r) => {
            let config = state.config.get();
            let policy = config.products.get(&r.product);
            Ok(Json(resource_json(&r, policy, state.clock.now())).into_response())
        }
        None => Err(ApiError::new(StatusCode::NOT_FOUND, format!("unknown resource {id:?}"))),
    }
}

/// A request body that must be a JSON object with only the `allowed` keys:
/// 400 naming `body` (with `shape`, the expected form), the unknown key, or
/// a repeated one.
fn json_object(body: &[u8], allowed: &[&str], shape: &str) -> Result<serde_json::Map<String, Value>, ApiError> {
    let Value::Object(obj) = parse_json(body)? else { return Err(ApiError::field("body", shape)) };
    if let Some(k) = obj.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(ApiError::field(k, "unknown field"));
    }
    Ok(obj)
}

async fn post_clock(
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

async fn post_pause(State(state): State<ApiState>, Extension(role): Extension<Role>) -> Result<Response, ApiError> {
    require(role, Permission::Operate)?;
    state.engine.set_paused(true).await?;
    Ok(Json(json!({"paused": true})).into_response())
}

async fn post_resume(State(state): State<ApiState>, Extension(role): Extension<Role>) -> Result<Response, ApiError> {
    require(role, Permission::Operate)?;
    state.engine.set_paused(false).await?;
    Ok(Json(json!({"paused": false})).into_response())
}

/// `GET /v1/deletions?before=T`: every deletion due before T (running or
/// projected from a future term end), with cause, deadline, policy and what
/// blocks it; deletions already under way are listed with their copies.
async fn get_deletions(
    State(state): State<ApiState>,
    Extension(role): Extension<Role>,
    axum::extract::Query(q): axum::extract::Query<std::collections::HashMap<String, String>>,
) -> Result<Response, ApiError> {
    require(role, Permission::Read)?;
    if let Some(k) = q.keys().find(|k| *k != "before") {
        return Err(ApiError::field(k, "unknown query parameter"));
    }
    let before =
        q.get("before").ok_or_else(|| ApiError::field("before", "required, e.g. ?before=2026-12-31T00:00:00Z"))?;
    let before = parse_rfc3339(before).map_err(|e| ApiError::field("before", e.to_string()))?;
    let config = state.config.get();
    let dry_run = config.safety.dry_run;
    let mut gates = Vec::new();
    for (flag, blocker) in
        [(Flag::Paused, "paused"), (Flag::ClockAnomaly, "clock_anomaly"), (Flag::GuardTripped, "guard")]
    {
        if state.store.flag(flag)? {
            gates.push(blocker.to_string());
        }
    }
    let mut items = Vec::new();
    state.store.for_each_resource(&mut |r| {
        let policy = config.products.get(&r.product);
        let mut blockers: Vec<String> = r.holds.iter().map(|h| format!("hold:{}", h.hold_id)).collect();
        if dry_run {
            blockers.push("dry_run".into());
        }
        blockers.extend(gates.iter().cloned());
        let item = if r.state == ResourceState::Deleting {
            let pending: Vec<Value> = r
                .copies
                .iter()
                .filter(|c| c.state.action().is_some())
                .map(|c| {
                    json!({"store": c.store, "copy": c.copy, "state": c.state, "stuck": c.stuck,
                                "attempts": c.attempts, "next_attempt_at": c.next_attempt_at.map(fmt_rfc3339),
                                "last_error": c.last_error})
                })
                .collect();
            let d = r.deciding.as_ref();
            Some(json!({"resource": r.id, "tenant": r.tenant, "product": r.product, "state": "deleting",
                        "cause": d.map(|b| b.cause), "reason": d.and_then(|b| b.reason),
                        "deadline": d.map(|b| fmt_rfc3339(b.delete_after)),
                        "policy_version": d.map(|b| b.policy_version.clone()),
                        "projected": false, "blockers": blockers, "pending_copies": pending}))
        } else {
            match policy {
                None => {
                    blockers.push(format!("product {} not configured", r.product));
                    (!r.state.is_final()).then(|| {
                        json!({"resource": r.id, "tenant": r.tenant, "product": r.product,
                        "state": r.state.as_str(), "cause": null, "deadline": null, "blockers": blockers})
                    })
                }
                Some(p) => r.forecast(p).filter(|f| f.deadline < before).map(|f| {
                    json!({"resource": r.id, "tenant": r.tenant, "product": r.product, "state": r.state.as_str(),
                           "cause": f.cause, "reason": f.reason, "deadline": fmt_rfc3339(f.deadline),
                           "policy_version": f.policy_version, "projected": f.projected, "blockers": blockers})
                }),
            }
        };
        items.extend(item);
    })?;
    // By deadline, then resource id, so equal deadlines list in a stable order.
    items.sort_by(|a, b| {
        (a["deadline"].as_str(), a["resource"].as_str()).cmp(&(b["deadline"].as_str(), b["resource"].as_str()))
    });
    Ok(Json(json!({"before": fmt_rfc3339(before), "deletions": items})).into_response())
}

/// Lifts what stopped deletions by itself: a tripped mass-deletion guard and
/// a clock anomaly. Pause is lifted by resume.
/// `POST /v1/admin/approve`, optionally `{"batch_digest": HEX}`: lifts a
/// tripped guard, releasing exactly the batch it holds (refused with 409 if
/// the digest names another), and a clock anomaly. Answers what was lifted
/// and the batch's size and digest. An empty body needs no Content-Type.
async fn post_approve(
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

/// `GET /v1/restore-check?resource=ID` or `?tenant=ID`: whether a backup
/// system may restore data (privacy policy 5.3.3: a restricted copy may not
/// be restored; general terms 4.1.6: deleted data stays deleted). Unknown
/// resources are refused: fail closed.
async fn get_restore_check(
    State(state): State<ApiState>,
    Extension(role): Extension<Role>,
    axum::extract::Query(q): axum::extract::Query<std::collections::HashMap<String, String>>,
) -> Result<Response, ApiError> {
    require(role, Permission::Read)?;
    if let Some(k) = q.keys().find(|k| *k != "resource" && *k != "tenant") {
        return Err(ApiError::field(k, "unknown query parameter"));
    }
    let refusal = |r: &Resource| -> Option<String> {
        match r.state {
            ResourceState::Active | ResourceState::Retained => None,
            ResourceState::Deleting => Some(format!("resource {} is being deleted; its backups are restricted", r.id)),
            ResourceState::Deleted => {
                Some(format!("resource {} is deleted; its remaining backups are restricted until purged", r.id))
            }
            ResourceState::Purged => Some(format!("resource {} is purged; nothing of it may be restored", r.id)),
        }
    };
    let answer = match (q.get("resource"), q.get("tenant")) {
        (Some(id), None) => {
            crate::ids::check_stored_id(id).map_err(|e| ApiError::field("resource", e))?;
            match state.store.resource(id)? {
                None => json!({"allowed": false, "reason": format!("unknown resource {id}")}),
                Some(r) => match refusal(&r) {
                    None => json!({"allowed": true, "reason": format!("resource {} is {}", r.id, r.state.as_str())}),
                    Some(reason) => json!({"allowed": false, "reason": reason}),
                },
            }
        }
        (None, Some(t)) => {
            crate::ids::check_stored_id(t).map_err(|e| ApiError::field("tenant", e))?;
            let ids = state.store.tenant_resources(t)?;
            let mut refused = Vec::new();
            for id in &ids {
                let reason = match state.store.resource(id)? {
                    None => Some(format!("resource {id} cannot be read")),
                    Some(r) => refusal(&r),
                };
                if let Some(reason) = reason {
                    refused.push(json!({"resource": id, "reason": reason}));
                }
            }
            if ids.is_empty() {
                // Nothing known of the tenant: fail closed, as for an unknown resource.
                json!({"allowed": false, "reason": format!("unknown tenant {t}")})
            } else if refused.is_empty() {
                json!({"allowed": true, "reason": format!("no resource of tenant {t} is deleted or restricted")})
            } else {
                json!({"allowed": false, "reason": format!("{} resources of tenant {t} are deleted or restricted", refused.len()),
                       "refused": refused})
            }
        }
        _ => return Err(ApiError::field("resource", "give exactly one of ?resource=ID or ?tenant=ID")),
    };
    Ok(Json(answer).into_response())
}

/// `GET /v1/audit?after_seq=N&limit=M`: audit records after N, oldest first.
async fn get_audit(
    State(state): State<ApiState>,
    Extension(role): Extension<Role>,
    axum::extract::Query(q): axum::extract::Query<std::collections::HashMap<String, String>>,
) -> Result<Response, ApiError> {
    require(role, Permission::Read)?;
    let num = |k: &str, default: u64| -> Result<u64, ApiError> {
        q.get(k).map_or(Ok(default), |v| v.parse().map_err(|_| ApiError::field(k, "must be a whole number")))
    };
    let after = num("after_seq", 0)?;
    let limit = num("limit", 1000)?.clamp(1, 10_000) as usize;
    let audit = state.audit.clone();
    let records = tokio::task::spawn_blocking(move || {
        let log = audit.lock().unwrap_or_else(|e| e.into_inner());
        log.read_after(after, limit)
    })
    .await
    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
    .map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?;
    Ok(Json(json!({ "records": records })).into_response())
}

/// `GET /v1/certificates/{resource}`: the deletion certificate of a purged resource.
async fn get_certificate(
    State(state): State<ApiState>,
    Extension(role): Extension<Role>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    require(role, Permission::Read)?;
    crate::ids::check_stored_id(&id).map_err(|e| ApiError::field("resource", e))?;
    match state.store.certificate(&id)? {
        Some(c) => Ok(Json(c).into_response()),
        None => {
            Err(ApiError::new(StatusCode::NOT_FOUND, format!("no certificate for {id:?} (not purged yet, or unknown)")))
        }
    }
}

/// `POST /v1/admin/retry {"resource": ID, "store": optional}`: an operator
/// retries a resource's stuck copies.
async fn post_retry(
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
async fn post_apply_policy(
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

/// `GET /readyz`: 200 when the engine completes a step within 5 s (its
/// loop and store are healthy), with the daemon-wide gates and the policy
/// versions in force; 503 otherwise (stopping, or stuck).
async fn get_readyz(State(state): State<ApiState>, Extension(role): Extension<Role>) -> Result<Response, ApiError> {
    require(role, Permission::Read)?;
    let healthy =
        matches!(tokio::time::timeout(std::time::Duration::from_secs(5), state.engine.ping()).await, Ok(Ok(())));
    let config = state.config.get();
    let versions: serde_json::Map<String, Value> =
        config.products.iter().map(|(n, p)| (n.clone(), json!(p.version))).collect();
    let body = json!({
        "ready": healthy,
        "now": fmt_rfc3339(state.clock.now()),
        "paused": state.store.flag(Flag::Paused)?,
        "guard_tripped": state.store.flag(Flag::GuardTripped)?,
        "guard_batch": state.store.guard_state()?.held.map(|b| json!({"size": b.size(), "digest": b.digest,
            "tripped_at": fmt_rfc3339(b.tripped_at), "window": b.window})),
        "clock_anomaly": state.store.flag(Flag::ClockAnomaly)?,
        "dry_run": config.safety.dry_run,
        "clock": match config.clock { crate::config::ClockSource::System => "system", _ => "manual" },
        "policies": versions,
        "last_reload": state.last_reload.lock().unwrap_or_else(|e| e.into_inner()).clone(),
    });
    let status = if healthy { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    Ok((status, Json(body)).into_response())
}

/// `GET /metrics`: the Prometheus text format. Gauges are read here, at
/// scrape time: one full scan of the store (O(resources)), the switches,
/// and the audit file's head.
async fn get_metrics(State(state): State<ApiState>, Extension(role): Extension<Role>) -> Result<Response, ApiError> {
    require(role, Permission::Read)?;
    let (store, audit) = (state.store.clone(), state.audit.clone());
    let gauges = tokio::task::spawn_blocking(move || -> Result<_, crate::store::StoreError> {
        let audit_head_seq = audit.lock().unwrap_or_else(|e| e.into_inner()).head().seq;
        Ok(crate::metrics::Gauges {
            store: store.stats()?,
            audit_head_seq,
            paused: store.flag(Flag::Paused)?,
            guard_tripped: store.flag(Flag::GuardTripped)?,
            clock_anomaly: store.flag(Flag::ClockAnomaly)?,
        })
    })
    .await
    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))??;
    let text = state.metrics.render(&gauges);
    Ok(([(axum::http::header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], text).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::event::{Billing, Event, EventBody};
    use crate::domain::lifecycle::Arrears;
    use chrono::{DateTime, Utc};
    use proptest::prelude::*;

    fn policy() -> ProductPolicy {
        let text = r#"
[daemon]
state_dir = "x"
[stores.primary]
class = "online"
executor = { kind = "fs", root = "/srv", path = "{tenant}/{resource}" }
[products.p]
stores = ["primary"]
buffer = { expiry = "15d", arrears = "10d", termination = "20d" }
"#;
        crate::config::parse(std::path::Path::new("/etc/retentiond/t.toml"), text)
            .unwrap()
            .products
            .remove("p")
            .unwrap()
    }

    /// Any instant chrono can hold, with the ends themselves likely.
    fn instant() -> impl Strategy<Value = Timestamp> {
        let (min, max) = (DateTime::<Utc>::MIN_UTC.timestamp(), DateTime::<Utc>::MAX_UTC.timestamp());
        prop_oneof![
            Just(DateTime::<Utc>::MIN_UTC),
            Just(DateTime::<Utc>::MAX_UTC),
            (0..86_400 * 3i64).prop_map(move |s| DateTime::from_timestamp(min + s, 0).unwrap()),
            (0..86_400 * 3i64).prop_map(move |s| DateTime::from_timestamp(max - s, 0).unwrap()),
            (min..=max).prop_map(|s| DateTime::from_timestamp(s, 0).unwrap()),
        ]
    }

    /// Any `Decimal`, the 96-bit extremes and every scale included.
    fn decimal() -> impl Strategy<Value = Decimal> {
        prop_oneof![
            Just(Decimal::MAX),
            Just(Decimal::MIN),
            Just(Decimal::ZERO),
            (any::<u32>(), any::<u32>(), any::<u32>(), any::<bool>(), 0..=28u32)
                .prop_map(|(lo, mid, hi, neg, scale)| Decimal::from_parts(lo, mid, hi, neg, scale)),
        ]
    }

    fn resource(created: Timestamp) -> Resource {
        let ev = Event {
            event_id: "e1".into(),
            at: created,
            tenant: "t1".into(),
            resource: Some("r1".into()),
            body: EventBody::Created { product: "p".into(), billing: Billing::Postpaid, term_end: None },
        };
        let rules = crate::domain::lifecycle::Rules {
            after_hold_release: chrono::Duration::zero(),
            may_start: true,
            may_dispatch: true,
            max_attempts: 1,
            late_event_floor: chrono::Duration::zero(),
        };
        Resource::create(&ev, &policy(), &[], created, rules).unwrap()
    }

    proptest! {
        /// Issue 9: `arrears.started` with amount 2^96 - 1 and time passing
        /// made `GET /v1/resources/{id}` drop the connection (a panic in the
        /// fee's multiplication). Whatever the amount, rate and times, the
        /// view is built.
        #[test]
        fn the_resource_view_never_panics(
            amount in decimal(),
            rate in decimal(),
            created in instant(),
            started in instant(),
            term_end in instant(),
            now in instant(),
        ) {
            let mut p = policy();
            p.late_fee_per_day = rate;
            let mut r = resource(created);
            r.term_end = Some(term_end);
            r.arrears = Some(Arrears {
                started_at: started,
                amount: Some(amount),
                currency: Some("EUR".into()),
                buffer: None,
                grace_ends_at: None,
                late_floor: None,
            });
            let v = resource_json(&r, Some(&p), now);
            prop_assert_eq!(&v["resource"], "r1");
            if let Some((fee, days)) = r.late_fee(rate, now) {
                prop_assert!(days >= 0);
                prop_assert_eq!(&v["arrears"]["late_fee_days"], &json!(days));
                prop_assert_eq!(&v["arrears"]["late_fee"], &json!(fee));
            } else {
                prop_assert!(v["arrears"].get("late_fee").is_none());
            }
        }
    }

    #[test]
    fn the_fee_of_the_issue_9_amount_is_left_out_not_a_panic() {
        let t0: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let mut r = resource(t0);
        r.arrears = Some(Arrears {
            started_at: t0,
            amount: Some(Decimal::MAX),
            currency: None,
            buffer: None,
            grace_ends_at: None,
            late_floor: None,
        });
        // 0.05 % of 2^96 for ten years does not fit in 96 bits.
        let later = t0 + chrono::Duration::days(3650);
        assert_eq!(r.late_fee(Decimal::new(5, 4), later), None);
        let v = resource_json(&r, Some(&policy()), later);
        assert_eq!(v["arrears"]["amount"], json!(Decimal::MAX));
        assert!(v["arrears"].get("late_fee").is_none(), "{v}");
        // An ordinary amount still gets its fee: 0.05 % of 1000 for 3650 days.
        r.arrears.as_mut().unwrap().amount = Some(Decimal::new(1000, 0));
        assert_eq!(r.late_fee(Decimal::new(5, 4), later), Some((Decimal::new(182500, 2), 3650)));
    }
}
