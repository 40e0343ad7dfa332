//! The daemon's health as probes and scrapers see it: liveness
//! (`GET /healthz`, no token), readiness with the daemon-wide gates
//! (`GET /readyz`) and the Prometheus metrics (`GET /metrics`).

use super::wire::{ClockKind, ErrorBody, GuardBatch, Readiness};
use super::{require, sorted, ApiError, ApiState};
use crate::auth::{Permission, Role};
use crate::store::Flag;
use crate::time::fmt_rfc3339;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Extension;

/// Liveness.
///
/// `GET /healthz`: the process answers (no token, no store access).
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "health",
    security(()),
    responses((status = 200, description = "The process answers: `ok`", body = String, content_type = "text/plain; charset=utf-8")),
)]
pub(super) async fn healthz() -> &'static str {
    "ok\n"
}

/// Readiness and the daemon-wide gates.
///
/// `GET /readyz`: 200 when the engine completes a step within 5 s (its
/// loop and store are healthy), with the daemon-wide gates and the policy
/// versions in force; 503 otherwise (stopping, or stuck).
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "health",
    responses(
        (status = 200, description = "Ready: the engine completed a step within 5 s", body = Readiness),
        (status = 403, description = "The role may not read (ingest)", body = ErrorBody),
        (status = 503, description = "Not ready (`ready` false: stopping, or stuck), with the same fields; \
            or the store could not be read (an error body)", body = super::openapi::NotReady),
    ),
)]
pub(super) async fn get_readyz(
    State(state): State<ApiState>,
    Extension(role): Extension<Role>,
) -> Result<Response, ApiError> {
    require(role, Permission::Read)?;
    let healthy =
        matches!(tokio::time::timeout(std::time::Duration::from_secs(5), state.engine.ping()).await, Ok(Ok(())));
    let config = state.config.get();
    let (paused, guard_tripped, clock_anomaly, guard) = state
        .read(|s| {
            Ok((s.flag(Flag::Paused)?, s.flag(Flag::GuardTripped)?, s.flag(Flag::ClockAnomaly)?, s.guard_state()?))
        })
        .await?;
    let body = Readiness {
        ready: healthy,
        now: Some(fmt_rfc3339(state.clock.now())),
        paused: Some(paused),
        guard_tripped: Some(guard_tripped),
        guard_batch: Some(guard.held.map(|b| GuardBatch {
            size: b.size() as u64,
            digest: b.digest,
            tripped_at: fmt_rfc3339(b.tripped_at),
            window: b.window,
        })),
        clock_anomaly: Some(clock_anomaly),
        dry_run: Some(config.safety.dry_run),
        clock: Some(match config.clock {
            crate::config::ClockSource::System => ClockKind::System,
            _ => ClockKind::Manual,
        }),
        policies: Some(config.products.iter().map(|(n, p)| (n.clone(), p.version.clone())).collect()),
        last_reload: Some(state.last_reload.lock().unwrap_or_else(|e| e.into_inner()).clone()),
    };
    let status = if healthy { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    Ok((status, sorted(&body)?).into_response())
}

/// Prometheus metrics.
///
/// `GET /metrics`: the Prometheus text format. Gauges are read here, at
/// scrape time: one full scan of the store (O(resources)), the switches,
/// dry run as the config in force says, and the audit file's head.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "health",
    responses(
        (status = 200, description = "The Prometheus text exposition format", body = String,
            content_type = crate::metrics::CONTENT_TYPE),
        (status = 403, description = "The role may not read (ingest)", body = ErrorBody),
        (status = 503, description = "The store could not be read", body = ErrorBody),
    ),
)]
pub(super) async fn get_metrics(
    State(state): State<ApiState>,
    Extension(role): Extension<Role>,
) -> Result<Response, ApiError> {
    require(role, Permission::Read)?;
    let (store, audit) = (state.store.clone(), state.audit.clone());
    let dry_run = state.config.get().safety.dry_run;
    let gauges = tokio::task::spawn_blocking(move || -> Result<_, crate::store::StoreError> {
        let audit_head_seq = audit.lock().unwrap_or_else(|e| e.into_inner()).head().seq;
        Ok(crate::metrics::Gauges {
            store: store.stats()?,
            holds: store.hold_counts()?,
            requests: store.open_requests()?,
            audit_head_seq,
            paused: store.flag(Flag::Paused)?,
            guard_tripped: store.flag(Flag::GuardTripped)?,
            clock_anomaly: store.flag(Flag::ClockAnomaly)?,
            dry_run,
        })
    })
    .await
    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))??;
    let text = state.metrics.render(&gauges);
    Ok(([(axum::http::header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], text).into_response())
}
