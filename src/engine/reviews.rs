//! Holds past their review date (issue 13). A hold is one of the
//! exceptions that stop deletion (general terms 4.1.5), and only its
//! release lifts it: a `review_at` given with `hold.placed` never does.
//! When that date comes, the engine says the hold needs a decision, once:
//! it notes the report on the hold's own record (a resource's, or the
//! tenant's for a tenant-wide hold), writes a `hold.review_due` audit
//! record and logs a warning with ids only; `retentiond_holds_review_due`
//! counts the holds so reported. The dates are read from the store's
//! review index, earliest first (never from every record), and the
//! earliest one not yet come is one of the times the loop wakes at
//! ([`super::Engine::sleep_duration`]).

use super::{Engine, EngineError};
use crate::audit::AuditKind;
use crate::domain::lifecycle::Hold;
use crate::store::{HoldKey, WriteSet};
use crate::time::{fmt_rfc3339, Timestamp};
use serde_json::json;

/// Review index entries read, reported and written back at a time.
pub(super) const REVIEW_SLICE: usize = 1000;

impl Engine {
    /// Reports every hold whose review date is at or before `now` and not
    /// yet reported. Each report takes the hold out of the review index
    /// (the index follows the record), so each slice is read from the
    /// start of what is left.
    pub(super) fn report_reviews(&mut self, now: Timestamp) -> Result<(), EngineError> {
        loop {
            // The index is read from the store: the pending writes first.
            self.settle()?;
            let due = self.store.reviews_due(now, REVIEW_SLICE)?;
            let mut reported = 0;
            for (_, key) in &due {
                reported += usize::from(self.report_review(key, now)?);
            }
            self.settle()?;
            // An entry that could not be reported (its record gone, which
            // the index does not allow) must not keep the loop going.
            if reported == 0 || due.len() < REVIEW_SLICE {
                return Ok(());
            }
        }
    }

    /// Reports the hold `key` as due for review, if its record still holds
    /// it unreported; true when it did.
    fn report_review(&mut self, key: &HoldKey, now: Timestamp) -> Result<bool, EngineError> {
        let mut w = WriteSet::default();
        let review_at = match &key.resource {
            Some(id) => {
                let Some(mut r) = self.read_resource(id)? else { return Ok(false) };
                let Some(at) = mark_reported(&mut r.holds, &key.hold_id, false, now) else { return Ok(false) };
                let due = self.due_of(&r);
                w.put_resource(r, due);
                at
            }
            None => {
                let mut holds = self.pending.tenant_holds(&*self.store, &key.tenant)?;
                let Some(at) = mark_reported(&mut holds.holds, &key.hold_id, true, now) else { return Ok(false) };
                w.tenants.push((key.tenant.clone(), holds));
                at
            }
        };
        let review_at = fmt_rfc3339(review_at);
        tracing::warn!(
            tenant = %key.tenant,
            resource = key.resource.as_deref(),
            hold_id = %key.hold_id,
            review_at = %review_at,
            "a hold is past its review date: it stays in force until released; decide whether to release it"
        );
        let scope = if key.resource.is_some() { "resource" } else { "tenant" };
        let data = json!({"hold_id": key.hold_id, "scope": scope, "review_at": review_at});
        self.record(&mut w, now, AuditKind::HoldReviewDue, Some(&key.tenant), key.resource.as_deref(), data);
        self.commit(w)?;
        Ok(true)
    }
}

/// Notes on the hold `hold_id` among `holds` (a resource's own, not the
/// copy of a tenant-wide one, or a tenant's: `tenant_wide` says which)
/// that its review was reported at `now`; its review date, or `None` when
/// no such hold waits for that report.
fn mark_reported(holds: &mut [Hold], hold_id: &str, tenant_wide: bool, now: Timestamp) -> Option<Timestamp> {
    let h = holds.iter_mut().find(|h| h.hold_id == hold_id && h.tenant_wide == tenant_wide)?;
    let at = h.review_at.filter(|t| *t <= now && h.review_reported_at.is_none())?;
    h.review_reported_at = Some(now);
    Some(at)
}
