//! The audit trail as served: records after a sequence number
//! (`GET /v1/audit`) and a purged resource's deletion certificate
//! (`GET /v1/certificates/{id}`).

use super::wire::AuditPage;
use super::{require, sorted, ApiError, ApiState};
use crate::auth::{Permission, Role};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};

/// `GET /v1/audit?after_seq=N&limit=M`: audit records after N, oldest first.
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

/// `GET /v1/certificates/{resource}`: the deletion certificate of a purged resource.
pub(super) async fn get_certificate(
    State(state): State<ApiState>,
    Extension(role): Extension<Role>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    require(role, Permission::Read)?;
    crate::ids::check_stored_id(&id).map_err(|e| ApiError::field("resource", e))?;
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
