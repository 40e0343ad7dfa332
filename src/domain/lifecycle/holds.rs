//! Holds (general terms 4.1.5; privacy policy 5.8): placing and releasing
//! them on a resource or a whole tenant.

use super::*;

/// Places the hold of a `hold.placed` event on `holds` (of a resource or a
/// tenant, named by `scope` in messages). Ok(false) when a release of the
/// same hold dated after the placement is already known: the late
/// placement is moot. Err for a hold id already in force.
pub(super) fn place_hold(
    holds: &mut Vec<Hold>,
    released: &[(String, Timestamp)],
    ev: &Event,
    scope: &str,
) -> Result<bool, Rejection> {
    let EventBody::HoldPlaced { hold_id, authority, reason, review_at } = &ev.body else {
        return Ok(false);
    };
    // A placement dated at its release's instant that arrives after it is
    // a new placement (arrival order breaks ties; the safe side, too).
    if released.iter().any(|(id, rel)| id == hold_id && ev.at < *rel) {
        return Ok(false);
    }
    if holds.iter().any(|h| &h.hold_id == hold_id) {
        return Err(Rejection::new(format!("hold {hold_id:?} is already placed on {scope}")));
    }
    holds.push(Hold {
        hold_id: hold_id.clone(),
        authority: authority.clone(),
        reason: reason.clone(),
        tenant_wide: ev.resource.is_none(),
        placed_at: ev.at,
        review_at: *review_at,
        review_reported_at: None,
    });
    Ok(true)
}

/// Lifts a hold and remembers when (so a late placement stays moot). A hold
/// not in force is a retryable rejection: its placement may yet arrive.
pub(super) fn release_hold(
    holds: &mut Vec<Hold>,
    released: &mut Vec<(String, Timestamp)>,
    hold_id: &str,
    at: Timestamp,
    scope: &str,
) -> Result<(), Rejection> {
    let Some(pos) = holds.iter().position(|h| h.hold_id == hold_id) else {
        return Err(Rejection { message: format!("hold {hold_id:?} is not placed on {scope}"), retryable: true });
    };
    holds.remove(pos);
    released.push((hold_id.to_string(), at));
    Ok(())
}

/// Holds placed on a whole tenant, kept so that resources created later are
/// covered too.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TenantHolds {
    /// Holds in force on the tenant.
    pub holds: Vec<Hold>,
    /// Released tenant hold ids and when.
    pub released: Vec<(String, Timestamp)>,
}

impl TenantHolds {
    /// Applies a tenant-wide `hold.placed` or `hold.released`; Err for an
    /// event that the tenant's holds forbid.
    pub fn apply(&mut self, ev: &Event) -> Result<(), Rejection> {
        match &ev.body {
            EventBody::HoldPlaced { .. } => {
                place_hold(&mut self.holds, &self.released, ev, &format!("tenant {:?}", ev.tenant)).map(|_| ())
            }
            EventBody::HoldReleased { hold_id } => {
                release_hold(&mut self.holds, &mut self.released, hold_id, ev.at, &format!("tenant {:?}", ev.tenant))
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::*;
    use crate::domain::vocabulary::Action;
    use chrono::Duration;

    fn released(hold_id: &str) -> EventBody {
        EventBody::HoldReleased { hold_id: hold_id.into() }
    }

    /// General terms 4.1.5, trial terms 6.4: while a hold covers a resource
    /// nothing of it is deleted, even long past its deadline.
    #[test]
    fn a_hold_stops_the_deletion_past_its_deadline() {
        let mut r = prepaid(day(30));
        r.tick(day(30));
        let fx = r.on(day(40), hold("h1"));
        assert_eq!(record(&fx, AuditKind::HoldPlaced)["scope"], "resource");

        let fx = r.tick(day(60));
        assert!(!kinds(&fx).contains(&AuditKind::DeletionStarted));
        assert_eq!(r.state, State::Retained);
        assert!(!r.wants_deletion(day(60)));
    }

    /// `safety.after_hold_release`: when the last hold is lifted after the
    /// deadline passed under it, the deletion waits a day more, counted from
    /// the release, so people can react.
    #[test]
    fn after_the_last_hold_is_lifted_the_deletion_waits_after_hold_release() {
        let mut r = prepaid(day(30));
        r.tick(day(30));
        r.on(day(40), hold("h1"));
        let fx = r.on(day(60), released("h1"));
        let data = record(&fx, AuditKind::HoldReleased);
        assert_eq!((data["holds_left"].as_u64(), data["not_before"].as_str()), (Some(0), Some(&*rfc(day(61)))));
        assert_eq!(r.forecast(&policy()).map(|f| f.deadline), Some(day(61)));

        r.tick(day(61) - Duration::seconds(1));
        assert_eq!(r.state, State::Retained);
        r.tick(day(61));
        assert_eq!(r.state, State::Deleting);
    }

    /// The wait counts from the last hold only: while another hold is in
    /// force nothing runs, and holds lifted before the deadline add no wait.
    #[test]
    fn holds_lifted_before_the_deadline_add_no_wait() {
        let mut r = prepaid(day(30));
        r.tick(day(30));
        r.on(day(31), hold("h1"));
        r.on(day(31), hold("h2"));
        let fx = r.on(day(40), released("h1"));
        assert_eq!(record(&fx, AuditKind::HoldReleased)["holds_left"], 1);
        let fx = r.on(day(41), released("h2"));
        assert!(record(&fx, AuditKind::HoldReleased).get("not_before").is_none());
        assert_eq!(r.not_before, None);

        r.tick(day(45));
        assert_eq!(r.state, State::Deleting);
    }

    /// Events arrive out of order: a placement dated before a release
    /// already known does not revive the hold; a release of a hold not yet
    /// placed is refused but retryable (its placement may still come); one
    /// hold id cannot be in force twice. A refused event changes nothing.
    #[test]
    fn late_placements_are_moot_and_unknown_releases_retryable() {
        let mut r = postpaid();
        r.on(day(1), hold("h1"));
        let before = r.clone();
        let twice = r.apply(&on_r(day(2), hold("h1")), &policy(), rules(), day(2)).unwrap_err();
        assert!(!twice.retryable && twice.message.contains("already placed"), "{twice:?}");
        assert_eq!(r, before);

        r.on(day(5), released("h1"));
        let fx = r.on(day(3), hold("h1"));
        assert!(!kinds(&fx).contains(&AuditKind::HoldPlaced));
        assert!(r.holds.is_empty());

        let unknown = r.apply(&on_r(day(6), released("h9")), &policy(), rules(), day(6)).unwrap_err();
        assert!(unknown.retryable, "{unknown:?}");
    }

    /// General terms 4.1.5: a hold on the whole tenant covers the resources
    /// created while it is in force; lifting it lifts it from the tenant,
    /// and a placement dated before that release stays moot.
    #[test]
    fn a_tenant_hold_covers_resources_created_later() {
        let mut tenant = TenantHolds::default();
        tenant.apply(&ev("h", day(1), None, hold("court-1"))).unwrap();
        assert!(tenant.apply(&ev("h", day(1), None, hold("court-1"))).is_err());

        let create =
            on_r(day(2), EventBody::Created { product: "x".into(), billing: Billing::Postpaid, term_end: None });
        let r = Resource::create(&create, &policy(), &tenant.holds, day(2), rules()).unwrap();
        assert_eq!(
            r.holds.iter().map(|h| (h.hold_id.as_str(), h.tenant_wide)).collect::<Vec<_>>(),
            [("court-1", true)]
        );
        let release = ev("hr", day(5), None, released("court-1"));
        assert!(r.concerned_by_tenant_event(&release, &policy()));

        tenant.apply(&release).unwrap();
        assert!(tenant.holds.is_empty());
        tenant.apply(&ev("h", day(3), None, hold("court-1"))).unwrap();
        assert!(tenant.holds.is_empty(), "dated before its release: moot");
    }

    /// General terms 4.1.5: a review date is carried with the hold (on
    /// the tenant's record and on each copy), and passing it lifts
    /// nothing: the deletion still waits for the release.
    #[test]
    fn a_review_date_passing_lifts_no_hold() {
        let review = EventBody::HoldPlaced {
            hold_id: "h1".into(),
            authority: "court".into(),
            reason: "case".into(),
            review_at: Some(day(35)),
        };
        let mut tenant = TenantHolds::default();
        tenant.apply(&ev("h", day(31), None, review.clone())).unwrap();
        assert_eq!(tenant.holds[0].review_at, Some(day(35)));
        let mut r = prepaid(day(30));
        r.tick(day(30));
        let fx = r.apply(&ev("h", day(31), None, review), &policy(), rules(), day(31)).unwrap();
        assert_eq!(record(&fx, AuditKind::HoldPlaced)["review_at"], rfc(day(35)));
        assert_eq!((r.holds[0].review_at, r.holds[0].tenant_wide), (Some(day(35)), true));
        let fx = r.tick(day(60));
        assert!(!kinds(&fx).contains(&AuditKind::DeletionStarted));
        assert_eq!(r.state, State::Retained);
    }

    /// General terms 4.1.5: a hold placed after deletion started stops every
    /// further executor call until it is lifted, and then the calls wait
    /// out `after_hold_release`.
    #[test]
    fn a_hold_placed_while_deleting_stops_further_executor_calls() {
        let mut r = deleting_primary();
        r.copy_failed("primary", "primary", "exit 1", day(1), rules());
        r.on(day(1) + Duration::seconds(30), hold("h1"));
        assert!(calls(&r.tick(day(2))).is_empty());
        assert_eq!(r.retry_due(), None);

        r.on(day(3), released("h1"));
        assert!(calls(&r.tick(day(4) - Duration::seconds(1))).is_empty());
        assert_eq!(calls(&r.tick(day(4))), [("primary", Action::Delete)]);
    }
}
