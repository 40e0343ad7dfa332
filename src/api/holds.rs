//! `GET /v1/holds` (product-spec §4): every hold in force, from the store's
//! index of holds a page at a time (issue 11: no request reads every
//! record), by tenant and by authority. Holds are placed and released as
//! events (`hold.placed`, `hold.released`); this is where an operator or
//! auditor sees them all, and which are past their review date.

use super::wire::{HoldList, ListedHold};
use super::{require, sorted, ApiError, ApiState};
use crate::auth::{Permission, Role};
use crate::domain::lifecycle::Hold;
use crate::store::{HoldFilter, HoldKey};
use crate::time::{fmt_rfc3339, Timestamp};
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use std::collections::HashMap;

/// Holds a page holds when the request does not say (`limit`).
pub const DEFAULT_PAGE: usize = 1_000;

/// The most holds one page holds.
pub const MAX_PAGE: usize = 10_000;

/// Where a page ends and the next begins, given to the client as an opaque
/// token (`next` in the answer, `after` in the next request):
/// `<tenant>,<resource>,<hold_id>`, the resource empty for a tenant-wide
/// hold (ids hold no comma).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cursor(pub HoldKey);

impl std::fmt::Display for Cursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let k = &self.0;
        write!(f, "{},{},{}", k.tenant, k.resource.as_deref().unwrap_or(""), k.hold_id)
    }
}

/// A token that is not one this daemon gave out.
#[derive(Debug, thiserror::Error)]
#[error("not a token from a previous answer's `next`")]
pub struct BadCursor;

impl std::str::FromStr for Cursor {
    type Err = BadCursor;
    fn from_str(s: &str) -> Result<Cursor, BadCursor> {
        let id = |id: &str| crate::ids::check_stored_id(id).map(|_| id.to_owned()).map_err(|_| BadCursor);
        let mut parts = s.split(',');
        let (Some(tenant), Some(resource), Some(hold_id), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(BadCursor);
        };
        let resource = if resource.is_empty() { None } else { Some(id(resource)?) };
        Ok(Cursor(HoldKey { tenant: id(tenant)?, resource, hold_id: id(hold_id)? }))
    }
}

/// Whether `h` is due for review at `now`: its date has passed, or the
/// engine has reported it (a clock set back does not make it undue).
pub fn review_due(h: &Hold, now: Timestamp) -> bool {
    h.review_reported_at.is_some() || h.review_at.is_some_and(|t| t <= now)
}

/// `GET /v1/holds[?tenant=T][&authority=A][&limit=N][&after=TOKEN]`: a page
/// of the holds in force, by tenant, resource and hold id, with `next`
/// when more follow. Read roles only (auditor, operator, admin).
#[utoipa::path(
    get,
    path = "/v1/holds",
    tag = "resources",
    params(
        ("tenant" = Option<super::openapi::StoredId>, Query, description = "Only this tenant's holds"),
        ("authority" = Option<String>, Query, description = "Only holds demanded by this authority (exact text)"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 10000,
            description = "A page of at most this many (default 1,000), with `next` when more follow"),
        ("after" = Option<String>, Query, description = "The `next` of the previous page"),
    ),
    responses(
        (status = 200, description = "A page of the holds in force, by tenant, resource and hold id", body = HoldList),
        (status = 400, description = "A bad `tenant`, `authority`, `limit` or `after`, or an unknown parameter: \
            `field` names it", body = super::wire::ErrorBody),
        (status = 403, description = "The role may not read (ingest)", body = super::wire::ErrorBody),
        (status = 503, description = "The store could not be read", body = super::wire::ErrorBody),
    ),
)]
pub(super) async fn get_holds(
    State(state): State<ApiState>,
    Extension(role): Extension<Role>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    require(role, Permission::Read)?;
    if let Some(k) = q.keys().find(|k| !["tenant", "authority", "limit", "after"].contains(&k.as_str())) {
        return Err(ApiError::field(k, "unknown query parameter"));
    }
    let tenant = q.get("tenant").map(|t| crate::ids::check_stored_id(t).map(|()| t.clone()));
    let tenant = tenant.transpose().map_err(|e| ApiError::field("tenant", e))?;
    let authority = match q.get("authority") {
        Some(a) if a.trim().is_empty() || a.chars().count() > 256 || a.chars().any(char::is_control) => {
            return Err(ApiError::field("authority", "must be 1 to 256 characters without control characters"))
        }
        a => a.cloned(),
    };
    let limit = match q.get("limit") {
        None => DEFAULT_PAGE,
        Some(n) => match n.parse::<usize>() {
            Ok(n) if (1..=MAX_PAGE).contains(&n) => n,
            _ => return Err(ApiError::field("limit", format!("a whole number from 1 to {MAX_PAGE}"))),
        },
    };
    let after = q.get("after").map(|t| t.parse::<Cursor>()).transpose();
    let after = after.map_err(|e| ApiError::field("after", e.to_string()))?;
    let filter = HoldFilter { tenant, authority };
    // One more than the page: whether another page follows is known, not
    // guessed from a full page.
    let mut found = state.read(move |s| Ok(s.holds(&filter, after.as_ref().map(|c| &c.0), limit + 1)?)).await?;
    let next = (found.len() > limit).then(|| {
        found.truncate(limit);
        found.last().map(|e| Cursor(e.key.clone()).to_string())
    });
    let now = state.clock.now();
    let holds = found
        .into_iter()
        .map(|e| ListedHold {
            review_due: review_due(&e.hold, now),
            hold_id: e.key.hold_id,
            tenant: e.key.tenant,
            resource: e.key.resource,
            authority: e.hold.authority,
            reason: e.hold.reason,
            placed_at: fmt_rfc3339(e.hold.placed_at),
            review_at: e.hold.review_at.map(fmt_rfc3339),
        })
        .collect();
    Ok(sorted(&HoldList { holds, next: next.flatten() })?.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A token reads back as the key it was made of; anything else is
    /// refused.
    #[test]
    fn cursors_read_back_and_others_are_refused() {
        for resource in [None, Some("r-1.a")] {
            let c = Cursor(HoldKey { tenant: "t1".into(), resource: resource.map(Into::into), hold_id: "h:1".into() });
            assert_eq!(c.to_string().parse::<Cursor>().unwrap(), c);
        }
        assert_eq!(Cursor(HoldKey { tenant: "t".into(), resource: None, hold_id: "h".into() }).to_string(), "t,,h");
        for bad in ["", "t1", "t1,r1", "t1,r1,h1,x", ",r1,h1", "t1,r1,", "t1,r/1,h1", "t 1,,h1"] {
            assert!(bad.parse::<Cursor>().is_err(), "{bad:?}");
        }
    }
}
