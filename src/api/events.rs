//! `POST /v1/events`: the billing and operations feeds.

use super::body::{parse_json, read_body};
use super::{require, ApiError, ApiState, MAX_EVENTS_PER_REQUEST};
use crate::auth::{Permission, Role};
use crate::config::Config;
use crate::domain::event::{parse_event, Event, EventBody};
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::{json, Value};

fn permission_for(ev: &Event) -> Permission {
    if ev.is_operator_event() {
        Permission::PostOperatorEvent
    } else {
        Permission::PostBillingEvent
    }
}

pub(super) async fn post_events(
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
