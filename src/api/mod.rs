//! The HTTP API (product-spec §4), on axum. Handlers validate input, check
//! the caller's role, and hand work to the engine; they never write state
//! themselves.
//!
//! # Layout
//! - this file: the router, the state handlers share, the authentication
//!   layer every route but `/healthz` passes first, roles, and how an
//!   [`ApiError`] becomes an answer;
//! - `body`: reading a request body (after authentication, JSON only,
//!   bounded, parsed strictly);
//! - `events`: `POST /v1/events`;
//! - `resources`: a resource, the deletion forecast and the restore check;
//! - [`forecast`]: the forecast read from the store's indexes, whole or by
//!   pages;
//! - [`holds`]: every hold in force, from the store's index of holds, in
//!   pages;
//! - `admin`: clock, pause, resume, approve, retry, apply-policy;
//! - `audit`: audit records and deletion certificates;
//! - `health`: `/healthz`, `/readyz` and `/metrics`;
//! - `console`: the read-only HTML console under `/console/` (issue 13.8),
//!   behind its own session cookie, outside the OpenAPI description;
//! - `openapi`: this API's description (`/v1/openapi.json`);
//! - [`wire`]: every request and answer body `retentiond ctl` sends or reads,
//!   as types both sides share.
//!
//! Each handler's `#[utoipa::path]` attribute names its method and path,
//! and is how it is routed ([`router`]) and described ([`description`]).

mod admin;
mod audit;
mod body;
mod console;
mod events;
pub mod forecast;
mod health;
pub mod holds;
mod openapi;
mod personal_forecast;
mod privacy;
mod resources;
pub mod wire;

pub use resources::{resource_json, resource_view};

use crate::auth::{Permission, Role, Tokens};
use crate::clock::Clock;
use crate::config::{Config, Shared};
use crate::engine::{EngineError, EngineHandle};
use crate::store::Store;
use axum::extract::rejection::PathRejection;
use axum::extract::{ConnectInfo, Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{from_fn_with_state, Next};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use serde::Serialize;
use serde_json::Value;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use utoipa::OpenApi as _;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

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
    pub last_reload: Arc<std::sync::Mutex<Option<wire::LastReload>>>,
    /// The audit log, for `GET /v1/audit`.
    pub audit: Arc<std::sync::Mutex<crate::audit::AuditLog>>,
    /// Counters for `GET /metrics`, shared with the engine.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Failed authentications per source, for the lock-out (429).
    pub auth_failures: Arc<std::sync::Mutex<crate::auth::AuthFailures>>,
}

impl ApiState {
    /// Runs `f` on the store on a blocking thread: a read that waits on the
    /// disk holds no tokio worker, so other requests are answered meanwhile
    /// (issue 11: reads never block the workers).
    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn Store) -> Result<T, ApiError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || f(&*store))
            .await
            .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("store read failed: {e}")))?
    }
}

/// An error answer: [`wire::ErrorBody`], `{"error":..,"field":..}`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    body: wire::ErrorBody,
}

impl ApiError {
    fn new(status: StatusCode, error: impl Into<String>) -> Self {
        ApiError { status, body: wire::ErrorBody { error: error.into(), ..Default::default() } }
    }
    fn field(field: &str, error: impl Into<String>) -> Self {
        let body = wire::ErrorBody { error: error.into(), field: Some(field.to_string()), ..Default::default() };
        ApiError { status: StatusCode::BAD_REQUEST, body }
    }
    /// 413 naming the limit (`events_per_request` or `bytes_per_request`) and its value.
    fn too_large(limit: &str, max: usize, error: String) -> Self {
        let body =
            wire::ErrorBody { error, limit: Some(limit.to_string()), max: Some(max as u64), ..Default::default() };
        ApiError { status: StatusCode::PAYLOAD_TOO_LARGE, body }
    }
    /// The error about the event at `index` of a batch.
    fn at_index(mut self, index: usize) -> Self {
        self.body.index = Some(index as u64);
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match sorted(&self.body) {
            Ok(body) => (self.status, body).into_response(),
            Err(_) => self.status.into_response(),
        }
    }
}

/// An answer as JSON with its keys sorted, as every answer built with
/// `json!` was (serde_json without `preserve_order` keeps a [`Value`]'s keys
/// sorted): the bytes clients have seen since. Only [`wire::Approval`] and
/// [`wire::PolicyReport`] go out in declared order instead.
fn sorted<T: Serialize>(answer: &T) -> Result<Json<Value>, ApiError> {
    serde_json::to_value(answer).map(Json).map_err(unbuildable)
}

/// An answer that could not be serialized: a fault of ours (500).
fn unbuildable(e: serde_json::Error) -> ApiError {
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("the answer could not be built: {e}"))
}

/// The bytes [`sorted`] answers with, built where the caller runs: a large
/// answer (the unpaged forecast: 121 MB at 10 million resources) is built
/// on a blocking thread with this, so that seconds of serializing never
/// hold a tokio worker, and with it the engine or a request queued behind
/// it (issue 11: a request waited 252 ms beside the forecast at 10M).
fn sorted_bytes<T: Serialize>(answer: &T) -> Result<Vec<u8>, ApiError> {
    let Json(value) = sorted(answer)?;
    serde_json::to_vec(&value).map_err(unbuildable)
}

/// An answer already serialized by [`sorted_bytes`].
fn json_response(bytes: Vec<u8>) -> Response {
    ([(axum::http::header::CONTENT_TYPE, "application/json")], bytes).into_response()
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

/// Builds the router. Every route but `/healthz` goes through the
/// authentication layer first (the bearer token, and the lock-out of
/// sources that fail too often), so no handler runs, and no body is read,
/// for a caller without a valid token.
pub fn router(state: ApiState) -> Router {
    let (router, _) = authenticated()
        .route_layer(from_fn_with_state(state.clone(), authenticate))
        .merge(open())
        .with_state(state.clone())
        .split_for_parts();
    router.merge(console::router(state))
}

/// The OpenAPI 3.1 description of every route [`router`] serves, from the
/// same route lists.
pub fn description() -> utoipa::openapi::OpenApi {
    openapi::finish(authenticated().merge(open()).into_openapi())
}

/// The routes behind a token, each routed and described by its handler's
/// `#[utoipa::path]`.
fn authenticated() -> OpenApiRouter<ApiState> {
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .routes(routes!(events::post_events))
        .routes(routes!(resources::get_resource))
        .routes(routes!(admin::post_clock))
        .routes(routes!(admin::post_pause))
        .routes(routes!(admin::post_resume))
        .routes(routes!(admin::post_approve))
        .routes(routes!(resources::get_deletions))
        .routes(routes!(resources::get_restore_check))
        .routes(routes!(audit::get_audit))
        .routes(routes!(audit::get_certificate))
        .routes(routes!(admin::post_retry))
        .routes(routes!(admin::post_retry_subject))
        .routes(routes!(admin::post_apply_policy))
        .routes(routes!(holds::get_holds))
        .routes(routes!(privacy::get_request))
        .routes(routes!(privacy::get_requests))
        .routes(routes!(privacy::get_subject))
        .routes(routes!(privacy::get_receipt))
        .routes(routes!(openapi::get_openapi))
        .routes(routes!(health::get_readyz))
        .routes(routes!(health::get_metrics))
}

/// The routes any caller reaches: liveness only.
fn open() -> OpenApiRouter<ApiState> {
    OpenApiRouter::default().routes(routes!(health::healthz))
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

/// The resource id in a request's path (`/v1/resources/{id}`,
/// `/v1/certificates/{id}`), or a 400 naming `resource`: for a path that
/// does not decode to UTF-8 too, which axum would answer in plain text,
/// not as the error body every refusal has.
fn resource_in_path(path: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    id_in_path(path, "resource")
}

/// The id in the path, checked as stored ids are; a 400 naming `field`.
fn id_in_path(path: Result<Path<String>, PathRejection>, field: &str) -> Result<String, ApiError> {
    let Path(id) = path.map_err(|e| ApiError::field(field, e.body_text()))?;
    crate::ids::check_stored_id(&id).map_err(|e| ApiError::field(field, e))?;
    Ok(id)
}

/// 403 unless `role` may do `p`.
fn require(role: Role, p: Permission) -> Result<(), ApiError> {
    if role.allows(p) {
        Ok(())
    } else {
        Err(ApiError::new(StatusCode::FORBIDDEN, format!("role {role:?} may not do this").to_lowercase()))
    }
}
