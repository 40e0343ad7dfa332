//! Applying events to a resource: creation, and each event type as of
//! its own time (domain-rules §1.1; equal times ordered by arrival).

use super::*;

impl Resource {
    /// Whether an `arrears.*` or `hold.*` event without a resource (about
    /// the whole tenant) concerns this resource of the tenant: arrears
    /// reach the resources whose billing the product marks as affected
    /// (`arrears_affects`, postpaid by default: pay-as-you-go draws on the
    /// balance, general terms 2.3) while not yet deleting; a tenant hold
    /// covers every resource not yet purged (general terms 4.1.5); its
    /// release, those it covers.
    pub fn concerned_by_tenant_event(&self, ev: &Event, policy: &ProductPolicy) -> bool {
        match &ev.body {
            EventBody::ArrearsStarted { .. } | EventBody::ArrearsSettled => {
                !self.state.is_final() && policy.arrears_affects.contains(&self.billing)
            }
            EventBody::HoldPlaced { .. } => self.state != State::Purged,
            EventBody::HoldReleased { hold_id } => self.holds.iter().any(|h| &h.hold_id == hold_id),
            _ => false,
        }
    }

    /// Starts tracking a resource from its `resource.created` event (applied
    /// at `now`); holds already placed on its tenant cover it from the start.
    /// A term end already long past gets the late-event floor.
    pub fn create(
        ev: &Event,
        policy: &ProductPolicy,
        tenant_holds: &[Hold],
        now: Timestamp,
        rules: Rules,
    ) -> Result<Resource, Rejection> {
        let (EventBody::Created { product, billing, term_end }, Some(id)) = (&ev.body, &ev.resource) else {
            return Err(Rejection {
                message: format!("unknown resource {:?}", ev.resource.as_deref().unwrap_or("")),
                retryable: true,
            });
        };
        let copies = policy
            .stores
            .iter()
            .filter(|s| s.class != StoreClass::Backup)
            .map(|s| DataCopy::new(&s.name, &s.name, s.class))
            .collect();
        let mut r = Resource {
            id: id.clone(),
            tenant: ev.tenant.clone(),
            product: product.clone(),
            billing: *billing,
            created_at: ev.at,
            term_end: *term_end,
            expiry: None,
            expiry_late_floor: term_end.and_then(|t| late_floor(t, policy.buffer.expiry, now, rules)),
            arrears: None,
            arrears_settled_at: None,
            settlement_spent: false,
            termination: None,
            reinstated_at: None,
            reinstatement_spent: false,
            release: None,
            holds: tenant_holds.to_vec(),
            released_holds: Vec::new(),
            not_before: None,
            state: State::Active,
            deciding: None,
            deletion_started_at: None,
            guard_approved: false,
            copies,
            history: Vec::new(),
            notices: Vec::new(),
        };
        let detail = match term_end {
            Some(t) => format!("created ({product}, prepaid, term ends {})", fmt_rfc3339(*t)),
            None => format!("created ({product}, postpaid)"),
        };
        r.log(ev.at, "resource.created", detail);
        Ok(r)
    }

    /// Applies an event about this resource (or its tenant), as of the
    /// event's own time (`now` is when it is applied). Call
    /// [`Resource::advance`] afterwards. All or nothing: on `Err` the
    /// resource is unchanged.
    pub fn apply(
        &mut self,
        ev: &Event,
        policy: &ProductPolicy,
        rules: Rules,
        now: Timestamp,
    ) -> Result<Vec<Effect>, Rejection> {
        let before = self.clone();
        let result = self.apply_inner(ev, policy, rules, now);
        if result.is_err() {
            *self = before;
        }
        result
    }

    pub(super) fn apply_inner(
        &mut self,
        ev: &Event,
        policy: &ProductPolicy,
        rules: Rules,
        now: Timestamp,
    ) -> Result<Vec<Effect>, Rejection> {
        if ev.tenant != self.tenant {
            return Err(Rejection::new(format!("resource {:?} belongs to another tenant", self.id)));
        }
        let mut fx = Vec::new();
        let at = ev.at;
        match &ev.body {
            EventBody::Created { .. } => {
                return Err(Rejection::new(format!("resource {:?} already exists", self.id)));
            }
            EventBody::Renewed { term_end } => {
                if self.billing == Billing::Postpaid {
                    return Err(Rejection::new("a postpaid resource has no term to renew"));
                }
                self.refuse_if_final("renewal")?;
                // Renewals may arrive out of order: the latest term end wins.
                let new = self.term_end.map_or(*term_end, |old| old.max(*term_end));
                self.term_end = Some(new);
                self.log(at, "resource.renewed", format!("renewed until {}", fmt_rfc3339(new)));
                // general terms 7.2: the renewal cancels an expiry buffer that
                // began at an earlier term end (domain-rules §1.2).
                if let Some(b) = self.expiry.take_if(|b| new > b.started_at) {
                    self.cancelled(at, &b, "renewed", &mut fx);
                }
            }
            EventBody::Terminated { reason } => {
                self.refuse_if_final("termination")?;
                if overtaken(self.reinstated_at, &mut self.reinstatement_spent, at) {
                    self.log(at, "resource.terminated", "termination dated before a later reinstatement: moot".into());
                } else if let Some(t) = &self.termination {
                    return Err(Rejection::new(format!(
                        "resource {:?} is already terminated ({} at {})",
                        self.id,
                        t.reason.as_str(),
                        fmt_rfc3339(t.at)
                    )));
                } else {
                    let length = policy.buffer.for_cause(Cause::Termination, Some(*reason));
                    let late_floor = late_floor(at, length, now, rules);
                    self.termination = Some(Termination { at, reason: *reason, buffer: None, late_floor });
                    self.log(at, "resource.terminated", format!("terminated: {}", reason.as_str()));
                }
            }
            EventBody::Reinstated => {
                self.refuse_if_final("reinstatement")?;
                let previous = self.reinstated_at;
                self.reinstated_at = Some(previous.map_or(at, |r| r.max(at)));
                let withdrawn = self.termination.as_ref().is_some_and(|t| t.at <= at);
                spend(previous, &mut self.reinstatement_spent, at, withdrawn);
                match self.termination.take_if(|t| t.at <= at) {
                    Some(t) => {
                        if let Some(b) = &t.buffer {
                            self.cancelled(at, b, "termination withdrawn by agreement", &mut fx);
                        }
                        self.log(at, "resource.reinstated", "termination withdrawn".into());
                    }
                    None if self.termination.is_some() => {
                        self.log(at, "resource.reinstated", "reinstatement dated before the termination: moot".into());
                    }
                    // It may have overtaken its termination: recorded, so a
                    // termination dated before it is moot when it arrives.
                    None => self.log(at, "resource.reinstated", "not terminated: recorded".into()),
                }
            }
            EventBody::Released => {
                self.refuse_if_final("release")?;
                if self.release.is_none() {
                    // general terms 4.1.4: the tenant's instruction, no buffer.
                    let b = buffer(Cause::Release, None, at, None, policy);
                    self.scheduled(&b, policy, &mut fx);
                    self.release = Some(b);
                    self.log(at, "resource.released", "released by the tenant: delete without buffer".into());
                }
            }
            EventBody::ArrearsStarted { amount, currency } => {
                self.refuse_if_final("arrears notice")?;
                if overtaken(self.arrears_settled_at, &mut self.settlement_spent, at) {
                    self.log(at, "arrears.started", "arrears dated before a later settlement: moot".into());
                } else {
                    match &mut self.arrears {
                        // A repeated notice updates the amount; the earliest start stands.
                        Some(a) => {
                            // An earlier-dated notice moves the grace end by
                            // as much; the grace length stays the one fixed
                            // when the arrears were first reported (a reload
                            // since must not shorten it).
                            let start = a.started_at.min(at);
                            let moved = a.started_at - start;
                            let known = a.grace_ends_at.map(|g| {
                                let anchored = later(g, policy.buffer.arrears.to_chrono());
                                a.late_floor.map_or(anchored, |f| f.max(anchored))
                            });
                            a.grace_ends_at = Some(match a.grace_ends_at {
                                Some(g) => g.checked_sub_signed(moved).unwrap_or(g),
                                None => later(start, policy.arrears_grace.to_chrono()),
                            });
                            if moved > chrono::Duration::zero() {
                                // Learned now that the arrears began earlier:
                                // the floor guards against the earlier date,
                                // but never pushes the deletion past the date
                                // already known.
                                let grace_end = a.grace_ends_at.unwrap_or(start);
                                let floor = late_floor(grace_end, policy.buffer.arrears, now, rules);
                                a.late_floor = match (floor, known) {
                                    (Some(f), Some(k)) => Some(f.min(k)),
                                    (f, _) => f,
                                };
                            }
                            a.started_at = start;
                            a.amount = amount.or(a.amount);
                            a.currency = currency.clone().or(a.currency.take());
                        }
                        None => {
                            let grace_end = later(at, policy.arrears_grace.to_chrono());
                            self.arrears = Some(Arrears {
                                started_at: at,
                                amount: *amount,
                                currency: currency.clone(),
                                buffer: None,
                                grace_ends_at: Some(grace_end),
                                late_floor: late_floor(grace_end, policy.buffer.arrears, now, rules),
                            })
                        }
                    }
                    self.log(at, "arrears.started", "fees in arrears".into());
                }
            }
            EventBody::ArrearsSettled => {
                self.refuse_if_final("settlement")?;
                let previous = self.arrears_settled_at;
                self.arrears_settled_at = Some(previous.map_or(at, |s| s.max(at)));
                let settles = self.arrears.as_ref().is_some_and(|a| a.started_at <= at);
                spend(previous, &mut self.settlement_spent, at, settles);
                if let Some(a) = self.arrears.take_if(|a| a.started_at <= at) {
                    if let Some(b) = &a.buffer {
                        self.cancelled(at, b, "arrears settled", &mut fx);
                    }
                }
                self.log(at, "arrears.settled", "arrears settled".into());
            }
            EventBody::BackupCreated { .. } | EventBody::BackupDeleted { .. } => {
                self.backup_event(ev, policy, &mut fx)?;
            }
            EventBody::AccountClosed
            | EventBody::SubjectCreated { .. }
            | EventBody::Requested { .. }
            | EventBody::RestrictionLifted { .. }
            | EventBody::RequestDecided { .. } => {
                // The engine applies these to subjects (`domain::privacy`);
                // the account's closure reaches resources as a termination.
                return Err(Rejection::new(format!("a {} event does not apply to a resource", ev.type_name())));
            }
            EventBody::HoldPlaced { hold_id, authority, review_at, .. } => {
                let scope = format!("{:?}", self.id);
                if place_hold(&mut self.holds, &self.released_holds, ev, &scope)? {
                    let tenant_wide = ev.resource.is_none();
                    let mut data =
                        json!({"hold_id": hold_id, "scope": if tenant_wide { "tenant" } else { "resource" }});
                    if let Some(t) = review_at {
                        data["review_at"] = json!(fmt_rfc3339(*t));
                    }
                    fx.push(Effect::Record { kind: AuditKind::HoldPlaced, data });
                    self.log(at, "hold.placed", format!("hold {hold_id} placed by {authority}"));
                } else {
                    self.log(at, "hold.placed", format!("hold {hold_id} dated before its release: moot"));
                }
            }
            EventBody::HoldReleased { hold_id } => {
                let scope = format!("{:?}", self.id);
                release_hold(&mut self.holds, &mut self.released_holds, hold_id, at, &scope)?;
                let mut data = json!({"hold_id": hold_id, "holds_left": self.holds.len()});
                // safety.after_hold_release: a deadline that passed under
                // the hold runs no sooner than this after the last release,
                // so people can react. The window counts from when the hold
                // is actually lifted (a release dated in the past must not
                // delete at once), so it can only delay a deletion.
                let lifted = at.max(now);
                if self.holds.is_empty() && self.deciding.as_ref().is_some_and(|b| b.delete_after <= lifted) {
                    let nb = later(lifted, rules.after_hold_release);
                    self.not_before = Some(self.not_before.map_or(nb, |old| old.max(nb)));
                    data["not_before"] = json!(fmt_rfc3339(nb));
                }
                fx.push(Effect::Record { kind: AuditKind::HoldReleased, data });
                self.log(at, "hold.released", format!("hold {hold_id} released"));
            }
        }
        self.refresh();
        // A buffer this event cancelled may start again at once (a late
        // renewal whose new term end has also passed): the wait after a
        // hold release then still stands.
        if !self.pending_starts(policy).iter().any(|(_, t)| *t <= now) {
            self.forget_not_before_if_active();
        }
        Ok(fx)
    }

    pub(super) fn refuse_if_final(&self, what: &str) -> Result<(), Rejection> {
        if self.state.is_final() {
            return Err(Rejection::new(format!(
                "{what} refused: resource {:?} is {}; deleted data cannot be restored (general terms 4.1.6)",
                self.id,
                self.state.as_str()
            )));
        }
        Ok(())
    }

    pub(super) fn log(&mut self, at: Timestamp, what: &str, detail: String) {
        self.history.push(HistoryEntry { at, what: what.to_string(), detail });
    }
}

/// Whether a cause dated `at` is moot because a later (or equal-time)
/// cancellation already came: a settlement for arrears, a reinstatement
/// for a termination. Dated before it: moot. Dated at its very instant:
/// the events are ordered by arrival. If the cancellation found nothing
/// to cancel, it overtook this event (moot, and the cancellation is now
/// spent); if it already cancelled something, this one arrived after it
/// and stands (issue 9: arrears, settlement, arrears again at one instant
/// must not leave the resource active for ever).
pub(super) fn overtaken(cancelled_at: Option<Timestamp>, spent: &mut bool, at: Timestamp) -> bool {
    match cancelled_at {
        Some(c) if at < c => true,
        Some(c) if at == c && !*spent => {
            *spent = true;
            true
        }
        _ => false,
    }
}

/// Records whether a cancellation dated `at` (the latest so far, or equal
/// to it) cancelled something, for [`overtaken`].
pub(super) fn spend(previous: Option<Timestamp>, spent: &mut bool, at: Timestamp, cancels: bool) {
    match previous {
        Some(p) if at < p => {}
        Some(p) if at == p => *spent |= cancels,
        _ => *spent = cancels,
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::*;
    use crate::time::parse_rfc3339;

    /// general terms 2.3: tenant-wide arrears reach the resources whose
    /// billing the product marks as affected (postpaid by default); a
    /// tenant hold reaches every resource not purged (general terms 4.1.5).
    #[test]
    fn tenant_wide_events_concern_the_resources_the_rules_name() {
        let arrears = ev("a", day(1), None, EventBody::ArrearsStarted { amount: None, currency: None });
        let hold = ev("h", day(1), None, hold("h1"));
        let (post, pre) = (postpaid(), prepaid(day(365)));
        assert!(post.concerned_by_tenant_event(&arrears, &policy()));
        assert!(!pre.concerned_by_tenant_event(&arrears, &policy()), "prepaid is not affected by default");
        assert!(pre.concerned_by_tenant_event(&hold, &policy()));
        let mut purged = postpaid();
        purged.state = State::Purged;
        assert!(!purged.concerned_by_tenant_event(&hold, &policy()));
        assert!(!purged.concerned_by_tenant_event(&arrears, &policy()));
    }

    /// Issue 9: equal times are ordered by arrival. A settlement that
    /// settled something lets an equal-time notice arriving after it stand;
    /// one that found nothing overtook that notice, which is then moot.
    #[test]
    fn a_cancellation_at_the_same_instant_is_spent_once() {
        let t = parse_rfc3339("2026-01-05T00:00:00Z").unwrap();
        let mut spent = false;
        spend(None, &mut spent, t, true);
        assert!(!overtaken(Some(t), &mut spent, t), "it settled earlier arrears: this one stands");
        let mut spent = false;
        spend(None, &mut spent, t, false);
        assert!(overtaken(Some(t), &mut spent, t), "it overtook this one");
        assert!(!overtaken(Some(t), &mut spent, t), "but only one");
        assert!(overtaken(Some(t), &mut spent, t - chrono::Duration::seconds(1)), "dated before: moot");
    }
}
