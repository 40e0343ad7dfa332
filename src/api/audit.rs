//! The audit trail as served: records after a sequence number
//! (`GET /v1/audit`) and a purged resource's deletion certificate
//! (`GET /v1/certificates/{id}`).

use super::wire::{AuditPage, Certificate, ErrorBody};
use super::{require, resource_in_path, sorted, ApiError, ApiState};
use crate::auth::{Permission, Role};
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};

/// Read the audit trail.
///
/// `GET /v1/audit?after_seq=N&limit=M`: audit records after N, oldest first.
#[utoipa::path(
    get,
    path = "/v1/audit",
    tag = "audit",
    params(
        ("after_seq" = Option<u64>, Query, description = "Records after this sequence number (default 0: from the first)"),
        ("limit" = Option<u64>, Query, description = "At most this many (default 1,000; read as 1 to 10,000)"),
    ),
    responses(
        (status = 200, description = "The records, oldest first, as in the log", body = AuditPage),
        (status = 400, description = "`after_seq` or `limit` is not a whole number: `field` names it", body = ErrorBody),
        (status = 403, description = "The role may not read (ingest)", body = ErrorBody),
        (status = 503, description = "The audit log could not be read", body = ErrorBody),
    ),
)]
pub(super) async fn get_audit(
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
    Ok(sorted(&AuditPage { records })?.into_response())
}

/// A purged resource's deletion certificate.
///
/// `GET /v1/certificates/{resource}`: the deletion certificate of a purged resource.
#[utoipa::path(
    get,
    path = "/v1/certificates/{id}",
    tag = "audit",
    params(("id" = super::openapi::StoredId, Path, description = "The purged resource's id")),
    responses(
        (status = 200, description = "The certificate, as stored; `retentiond audit certificate` checks it against \
            the log", body = Certificate),
        (status = 400, description = "Not an id (`field` is `resource`)", body = ErrorBody),
        (status = 403, description = "The role may not read (ingest)", body = ErrorBody),
        (status = 404, description = "Not purged yet, or unknown", body = ErrorBody),
        (status = 503, description = "The store could not be read", body = ErrorBody),
    ),
)]
pub(super) async fn get_certificate(
    State(state): State<ApiState>,
    Extension(role): Extension<Role>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    require(role, Permission::Read)?;
    let id = resource_in_path(path)?;
    let found = {
        let id = id.clone();
        state.read(move |s| Ok(s.certificate(&id)?)).await?
    };
    match found {
        // As stored: keys sorted, what `retentiond audit certificate` checks
        // (ctl reads it as a [`super::wire::Certificate`]).
        Some(c) => Ok(Json(c).into_response()),
        None => {
            Err(ApiError::new(StatusCode::NOT_FOUND, format!("no certificate for {id:?} (not purged yet, or unknown)")))
        }
    }
}
