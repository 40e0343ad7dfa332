//! Property tests over random sequences of events and clock moves on the pure
//! lifecycle (no daemon, no I/O): the invariants of domain-rules §5 hold for
//! any order of events.
//!
//! The oracle is kept by the test itself, from the events it sent, not from
//! the resource's own fields: which causes are live (the latest term end, a
//! termination not withdrawn, arrears not settled, a release) and which holds
//! are in force. A deletion may only start when one live cause's own deadline
//! has passed and no hold is in force.

use chrono::{Duration, TimeZone, Utc};
use proptest::prelude::*;
use retentiond::domain::event::{Billing, Event, EventBody};
use retentiond::domain::lifecycle::{Effect, Resource, Rules, State};
use retentiond::domain::policy::{ProductPolicy, TerminationReason};
use retentiond::time::Timestamp;
use std::path::Path;

/// The product under test; `notices`: with warnings and a renewal reminder
/// (the twin without them must delete at exactly the same times).
fn policy(notices: bool) -> ProductPolicy {
    let text = r#"
[daemon]
state_dir = "x"
[stores.primary]
class = "online"
executor = { kind = "fs", root = "/srv", path = "{tenant}/{resource}" }
[stores.cache]
class = "cache"
executor = { kind = "fs", root = "/srv/cache", path = "{resource}" }
[stores.snap]
class = "backup"
purge = "at_expiry"
executor = { kind = "command", argv = ["/bin/true", "{resource}"] }
[products.p]
stores = ["primary", "cache", "snap"]
buffer = { expiry = "15d", arrears = "10d", termination = "20d", violation = "0s", attack = "30d" }
arrears_grace = "3d"
arrears_affects = ["prepaid", "postpaid"]
"#;
    let extra = if notices { "notices = [\"12d\", \"7d\", \"1d\", \"1h\"]\nrenewal_reminder = \"7d\"\n" } else { "" };
    let text = format!("{text}{extra}");
    let mut p =
        retentiond::config::parse(Path::new("/etc/retentiond/test.toml"), &text).unwrap().products.remove("p").unwrap();
    if !notices {
        p.renewal_reminder = Vec::new();
        p = p.seal();
    }
    p
}

const AHR_HOURS: i64 = 24;
/// `safety.late_event_floor`, in hours.
const LATE_FLOOR_HOURS: i64 = 24;

#[derive(Clone, Debug)]
enum Op {
    /// Time passes by this many hours.
    Advance(u16),
    /// An event dated `late` hours before now (a late arrival; up to weeks,
    /// so some arrive after their whole buffer has run out).
    Event { late: u16, kind: Kind },
    /// An event dated at exactly the same instant as the previous event
    /// (equal timestamps: arrival order must break the tie).
    Again(Kind),
    /// The executor reports one in-flight copy done.
    ExecutorDone,
    /// The executor reports one in-flight copy failed.
    ExecutorFailed,
    /// The backup system registers a copy expiring this many hours after now.
    Backup(u16),
    /// The daemon-wide gates change (pause, dry run, guard, clock anomaly).
    Gates { start: bool, dispatch: bool },
    /// The notifier confirms (true) or fails (false) every pending notice.
    Notify(bool),
}

#[derive(Clone, Debug)]
enum Kind {
    Renew(u16),
    Terminate(u8),
    Reinstate,
    Release,
    ArrearsStarted,
    ArrearsSettled,
    HoldPlaced(u8),
    HoldReleased(u8),
}

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![
        (1u16..2000).prop_map(Kind::Renew),
        (0u8..5).prop_map(Kind::Terminate),
        Just(Kind::Reinstate),
        Just(Kind::Release),
        Just(Kind::ArrearsStarted),
        Just(Kind::ArrearsSettled),
        (0u8..3).prop_map(Kind::HoldPlaced),
        (0u8..3).prop_map(Kind::HoldReleased),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u16..800).prop_map(Op::Advance),
        4 => ((0u16..72), kind()).prop_map(|(late, kind)| Op::Event { late, kind }),
        1 => ((0u16..1200), kind()).prop_map(|(late, kind)| Op::Event { late, kind }),
        3 => kind().prop_map(Op::Again),
        2 => Just(Op::ExecutorDone),
        1 => Just(Op::ExecutorFailed),
        1 => (0u16..3000).prop_map(Op::Backup),
        1 => (any::<bool>(), any::<bool>()).prop_map(|(start, dispatch)| Op::Gates { start, dispatch }),
        2 => any::<bool>().prop_map(Op::Notify),
    ]
}

/// The test's own record of what the events said.
#[derive(Default, Debug)]
struct Oracle {
    term_end: Option<Timestamp>,
    /// When, why, and the late-event floor it was given.
    termination: Option<(Timestamp, TerminationReason, Option<Timestamp>)>,
    reinstated: Option<Timestamp>,
    /// The latest reinstatement withdrew a termination (one it found, or
    /// an equal-time one that arrived after it).
    reinstated_spent: bool,
    /// When the arrears began, and the late-event floor.
    arrears: Option<(Timestamp, Option<Timestamp>)>,
    settled: Option<Timestamp>,
    /// As `reinstated_spent`, for settlements.
    settled_spent: bool,
    release: Option<Timestamp>,
    holds: Vec<(String, Timestamp)>,
    released_holds: Vec<(String, Timestamp)>,
    renewed_before_any_deadline: bool,
}

impl Oracle {
    /// True when some live cause's buffer has started by `now` (the
    /// resource is retained rather than active).
    fn any_running(&self, now: Timestamp) -> bool {
        self.term_end.is_some_and(|t| t <= now)
            || self.termination.is_some_and(|(at, _, _)| at <= now)
            || self.arrears.is_some_and(|(at, _)| at + Duration::days(3) <= now)
            || self.release.is_some_and(|at| at <= now)
    }

    /// The earliest time any live cause allows deletion.
    fn earliest_permitted(&self) -> Option<Timestamp> {
        let d = |days| Duration::days(days);
        let mut out = Vec::new();
        if let Some(t) = self.term_end {
            out.push(t + d(15));
        }
        if let Some((at, reason, floor)) = self.termination {
            out.push(floor.map_or(at + termination_buffer(reason), |f| f.max(at + termination_buffer(reason))));
        }
        if let Some((at, floor)) = self.arrears {
            out.push(floor.map_or(at + d(3) + d(10), |f| f.max(at + d(3) + d(10))));
        }
        if let Some(at) = self.release {
            out.push(at);
        }
        out.into_iter().min()
    }
}

fn termination_buffer(reason: TerminationReason) -> Duration {
    match reason {
        TerminationReason::Violation => Duration::days(0),
        TerminationReason::Attack => Duration::days(30),
        _ => Duration::days(20),
    }
}

/// safety.late_event_floor, kept by the oracle: an event learned of at
/// `now` whose deadline (`anchored`, after a buffer of `length`) falls
/// before `now + min(floor, length)` waits until then.
fn late_floor(anchored: Timestamp, length: Duration, now: Timestamp) -> Option<Timestamp> {
    let floor = now + Duration::hours(LATE_FLOOR_HOURS).min(length);
    (anchored < floor).then_some(floor)
}

fn reason(i: u8) -> TerminationReason {
    TerminationReason::ALL[i as usize % 5]
}

fn ev(n: &mut u32, at: Timestamp, resource: Option<&str>, body: EventBody) -> Event {
    *n += 1;
    Event { event_id: format!("e{n}"), at, tenant: "t".into(), resource: resource.map(String::from), body }
}

fn run(ops: Vec<Op>, prepaid: bool) -> Result<(), TestCaseError> {
    let quiet_policy = policy(false);
    let policy = policy(true);
    let mut rules = Rules {
        after_hold_release: Duration::hours(AHR_HOURS),
        may_start: true,
        may_dispatch: true,
        max_attempts: 3,
        late_event_floor: Duration::hours(LATE_FLOOR_HOURS),
    };
    let t0 = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    let mut now = t0;
    let mut n = 0;
    let term_end = if prepaid { Some(t0 + Duration::days(30)) } else { None };
    let billing = if prepaid { Billing::Prepaid } else { Billing::Postpaid };
    let created = ev(&mut n, t0, Some("r"), EventBody::Created { product: "p".into(), billing, term_end });
    let mut r = Resource::create(&created, &policy, &[], now, rules).unwrap();
    // The same resource under a policy without notices: every call is made
    // on both, and their deletions must not differ in any way.
    let mut quiet = Resource::create(&created, &quiet_policy, &[], now, rules).unwrap();
    let mut oracle = Oracle { term_end, ..Default::default() };
    let mut in_flight: Vec<(String, String)> = Vec::new();
    let mut guard_until: Option<Timestamp> = None;
    let mut last_at = t0;

    for op in ops {
        let before = r.state;
        let notices_before = r.notices.len();
        let mut fx = Vec::new();
        let mut quiet_fx = Vec::new();
        match op {
            Op::Advance(h) => now += Duration::hours(h as i64),
            Op::Notify(ok) => {
                let keys: Vec<String> = r.notices_to_send(now).into_iter().map(|n| n.key.clone()).collect();
                for key in keys {
                    let more = if ok { r.notice_sent(&key, now, None) } else { r.notice_failed(&key, "exit 1", now) };
                    prop_assert!(
                        !more.iter().any(|e| matches!(e, Effect::Dispatch { .. })),
                        "a notice dispatched a call"
                    );
                }
            }
            Op::ExecutorDone => {
                if let Some((store, copy)) = in_flight.pop() {
                    fx.extend(r.copy_done(&store, &copy, now));
                    quiet_fx.extend(quiet.copy_done(&store, &copy, now));
                }
            }
            Op::Backup(h) => {
                let copy = format!("s{n}");
                let body = EventBody::BackupCreated {
                    store: "snap".into(),
                    copy,
                    expires_at: now + Duration::hours(h as i64),
                };
                let e = ev(&mut n, now, Some("r"), body);
                if let Ok(more) = r.apply(&e, &policy, rules, now) {
                    fx.extend(more);
                }
                if let Ok(more) = quiet.apply(&e, &quiet_policy, rules, now) {
                    quiet_fx.extend(more);
                }
            }
            Op::Gates { start, dispatch } => {
                rules.may_start = start;
                rules.may_dispatch = dispatch;
            }
            Op::ExecutorFailed => {
                if let Some((store, copy)) = in_flight.pop() {
                    fx.extend(r.copy_failed(&store, &copy, "exit 1", now, rules));
                    quiet_fx.extend(quiet.copy_failed(&store, &copy, "exit 1", now, rules));
                }
            }
            Op::Event { .. } | Op::Again(_) => {
                let (at, kind) = match op {
                    Op::Event { late, kind } => ((now - Duration::hours(late as i64)).max(t0), kind),
                    Op::Again(kind) => (last_at, kind),
                    _ => unreachable!(),
                };
                last_at = at;
                let (resource, body) = match kind {
                    Kind::Renew(h) => (Some("r"), EventBody::Renewed { term_end: at + Duration::hours(h as i64) }),
                    Kind::Terminate(i) => (Some("r"), EventBody::Terminated { reason: reason(i) }),
                    Kind::Reinstate => (Some("r"), EventBody::Reinstated),
                    Kind::Release => (Some("r"), EventBody::Released),
                    Kind::ArrearsStarted => (None, EventBody::ArrearsStarted { amount: None, currency: None }),
                    Kind::ArrearsSettled => (None, EventBody::ArrearsSettled),
                    Kind::HoldPlaced(i) => (
                        None,
                        EventBody::HoldPlaced {
                            hold_id: format!("h{i}"),
                            authority: "court".into(),
                            reason: "case".into(),
                            // A review date lifts no hold (general terms 4.1.5).
                            review_at: (i % 2 == 1).then(|| at + chrono::Duration::days(1)),
                        },
                    ),
                    Kind::HoldReleased(i) => (None, EventBody::HoldReleased { hold_id: format!("h{i}") }),
                };
                let e = ev(&mut n, at, resource, body.clone());
                let was_final = r.state.is_final();
                let deadline_before = oracle.earliest_permitted();
                let quiet_result = quiet.apply(&e, &quiet_policy, rules, now);
                prop_assert_eq!(quiet_result.is_ok(), r.clone().apply(&e, &policy, rules, now).is_ok());
                if let Ok(more) = quiet_result {
                    quiet_fx.extend(more);
                }
                if let Ok(more) = r.apply(&e, &policy, rules, now) {
                    {
                        fx.extend(more);
                        prop_assert!(
                            !was_final || matches!(body, EventBody::HoldPlaced { .. } | EventBody::HoldReleased { .. }),
                            "a final resource accepted {body:?}"
                        );
                        // Keep the oracle from what was accepted.
                        match body {
                            EventBody::Renewed { term_end } => {
                                let new = oracle.term_end.map_or(term_end, |t| t.max(term_end));
                                if deadline_before.is_none_or(|d| at < d) && new > now {
                                    oracle.renewed_before_any_deadline = true;
                                }
                                oracle.term_end = Some(new);
                            }
                            // Equal times: a cancellation that cancelled nothing
                            // overtook the cause dated at its instant (moot);
                            // one that did, came before it (the cause stands).
                            EventBody::Terminated { reason } => {
                                let moot = match oracle.reinstated {
                                    Some(r) if at < r => true,
                                    Some(r) if at == r && !oracle.reinstated_spent => {
                                        oracle.reinstated_spent = true;
                                        true
                                    }
                                    _ => false,
                                };
                                if !moot && oracle.termination.is_none() {
                                    let length = termination_buffer(reason);
                                    oracle.termination = Some((at, reason, late_floor(at + length, length, now)));
                                }
                            }
                            EventBody::Reinstated => {
                                let withdraws = oracle.termination.is_some_and(|(t, _, _)| t <= at);
                                match oracle.reinstated {
                                    Some(r) if at < r => {}
                                    Some(r) if at == r => oracle.reinstated_spent |= withdraws,
                                    _ => oracle.reinstated_spent = withdraws,
                                }
                                oracle.reinstated = Some(oracle.reinstated.map_or(at, |r| r.max(at)));
                                if withdraws {
                                    oracle.termination = None;
                                }
                            }
                            EventBody::Released => oracle.release = oracle.release.or(Some(at)),
                            EventBody::ArrearsStarted { .. } => {
                                let moot = match oracle.settled {
                                    Some(s) if at < s => true,
                                    Some(s) if at == s && !oracle.settled_spent => {
                                        oracle.settled_spent = true;
                                        true
                                    }
                                    _ => false,
                                };
                                if !moot {
                                    let floor = |start: Timestamp| {
                                        late_floor(start + Duration::days(13), Duration::days(10), now)
                                    };
                                    oracle.arrears = Some(match oracle.arrears {
                                        None => (at, floor(at)),
                                        // Dated earlier: the floor protects against
                                        // the earlier date, but never pushes the
                                        // deletion past what was already known.
                                        Some((a, old)) if at < a => {
                                            let known =
                                                old.map_or(a + Duration::days(13), |f| f.max(a + Duration::days(13)));
                                            (at, floor(at).map(|f| f.min(known)))
                                        }
                                        Some(kept) => kept,
                                    });
                                }
                            }
                            EventBody::ArrearsSettled => {
                                let settles = oracle.arrears.is_some_and(|(a, _)| a <= at);
                                match oracle.settled {
                                    Some(s) if at < s => {}
                                    Some(s) if at == s => oracle.settled_spent |= settles,
                                    _ => oracle.settled_spent = settles,
                                }
                                oracle.settled = Some(oracle.settled.map_or(at, |s| s.max(at)));
                                if settles {
                                    oracle.arrears = None;
                                }
                            }
                            EventBody::HoldPlaced { hold_id, .. } => {
                                if !oracle.released_holds.iter().any(|(id, rel)| *id == hold_id && at < *rel) {
                                    oracle.holds.push((hold_id, at));
                                }
                            }
                            EventBody::HoldReleased { hold_id } => {
                                oracle.holds.retain(|(id, _)| *id != hold_id);
                                oracle.released_holds.push((hold_id, at));
                                // A deadline that passed under the hold waits
                                // after_hold_release (safety.after_hold_release).
                                let lifted = at.max(now);
                                if oracle.holds.is_empty() && oracle.earliest_permitted().is_some_and(|p| p <= lifted) {
                                    guard_until = Some(lifted + Duration::hours(AHR_HOURS));
                                }
                            }
                            EventBody::Created { .. }
                            | EventBody::BackupCreated { .. }
                            | EventBody::BackupDeleted { .. } => {}
                            // Never sent here: the account's events go to subjects
                            // (tests/privacy_properties.rs), and the lifecycle refuses them.
                            EventBody::AccountClosed
                            | EventBody::SubjectCreated { .. }
                            | EventBody::Requested { .. }
                            | EventBody::RestrictionLifted { .. }
                            | EventBody::RequestDecided { .. } => {}
                        }
                    }
                }
            }
        }
        // Once no buffer runs the resource is back to active: an old hold
        // release no longer delays what a new cause starts.
        if !oracle.any_running(now) {
            guard_until = None;
        }
        let busy = |s: &str, c: &str| in_flight.iter().any(|(a, b)| a == s && b == c);
        fx.extend(r.advance(&policy, now, rules, &busy, &|_| false));
        quiet_fx.extend(quiet.advance(&quiet_policy, now, rules, &busy, &|_| false));

        // Notices never delay or hasten anything (issue 5): the twin without
        // warnings or reminder, whose notices are never confirmed, moves
        // and deletes exactly alike.
        let deletion_kinds = |fx: &[Effect]| -> Vec<String> {
            fx.iter()
                .filter_map(|e| match e {
                    Effect::Record { kind, .. } if kind.as_str().starts_with("notice.") => None,
                    Effect::Record { kind, .. } => Some(kind.to_string()),
                    Effect::Dispatch { store, copy, action } => Some(format!("dispatch {store} {copy} {action}")),
                })
                .collect()
        };
        prop_assert_eq!(deletion_kinds(&fx), deletion_kinds(&quiet_fx));
        prop_assert_eq!(r.state, quiet.state);
        prop_assert_eq!(r.deletion_date(), quiet.deletion_date());
        prop_assert_eq!(&r.copies, &quiet.copies);
        prop_assert_eq!(r.not_before, quiet.not_before);
        prop_assert_eq!(r.deciding.as_ref().map(|b| b.delete_after), quiet.deciding.as_ref().map(|b| b.delete_after));

        // No pending notice tells what is no longer true (it is dropped as
        // superseded instead).
        for n in r.notices.iter().filter(|n| n.sent_at.is_none()) {
            use retentiond::domain::lifecycle::NoticeKind;
            match n.kind {
                NoticeKind::DeletionWarning => prop_assert!(
                    r.state == State::Retained && r.holds.is_empty() && n.date == r.deletion_date(),
                    "stale warning pending: {n:?}"
                ),
                NoticeKind::RenewalReminder => prop_assert!(
                    r.state == State::Active && n.date == r.term_end && r.expiry.is_none(),
                    "stale reminder pending: {n:?}"
                ),
                NoticeKind::BufferStarted => prop_assert!(r.state == State::Retained, "stale buffer notice: {n:?}"),
                NoticeKind::DeletionCompleted => {}
            }
        }
        // Notices: one per key; a warning only while a buffer runs, no hold
        // is in force, and its date is still ahead; a reminder only before
        // the term end, renewal_reminder ahead of it.
        let mut keys: Vec<&str> = r.notices.iter().map(|n| n.key.as_str()).collect();
        keys.sort_unstable();
        keys.dedup();
        prop_assert_eq!(keys.len(), r.notices.len(), "duplicate notice keys");
        for n in &r.notices[notices_before..] {
            use retentiond::domain::lifecycle::NoticeKind;
            match n.kind {
                NoticeKind::DeletionWarning => {
                    let date = n.date.unwrap();
                    prop_assert!(n.due_at <= now && now < date, "warning {n:?} at {now}");
                    prop_assert!(oracle.holds.is_empty(), "warning under a hold");
                    prop_assert_eq!(r.state, State::Retained);
                }
                NoticeKind::RenewalReminder => {
                    let date = n.date.unwrap();
                    // Before the renewal cutoff (7 days before the term
                    // end), by the reminder's 7-day offset.
                    prop_assert!(now < date && n.due_at == date - Duration::days(14), "reminder {n:?} at {now}");
                }
                NoticeKind::BufferStarted => prop_assert!(n.due_at <= now),
                NoticeKind::DeletionCompleted => prop_assert!(r.state.is_final()),
            }
        }

        let dispatched: Vec<(String, String)> = fx
            .iter()
            .filter_map(|e| match e {
                Effect::Dispatch { store, copy, .. } => Some((store.clone(), copy.clone())),
                _ => None,
            })
            .collect();
        // Closed gates: no executor call, and no purge at expiry started.
        prop_assert!(rules.may_dispatch || dispatched.is_empty(), "dispatched with dispatch closed");
        for e in &fx {
            match e {
                Effect::Dispatch { store, copy, action: retentiond::executor::Action::Purge } => {
                    // privacy policy 5.3.3: a restricted backup goes at its expiry, not before.
                    let c = r.copies.iter().find(|c| &c.store == store && &c.copy == copy).unwrap();
                    prop_assert!(c.expires_at.is_some_and(|t| t <= now), "purge of {copy} before it expires");
                }
                Effect::Record { kind: retentiond::audit::AuditKind::CopyPurgeStarted, .. } => {
                    prop_assert!(rules.may_start, "purge started with starts closed");
                }
                _ => {}
            }
        }
        // Never delete while a hold covers the resource (general terms 4.1.5).
        prop_assert!(oracle.holds.is_empty() || dispatched.is_empty(), "dispatched under hold {:?}", oracle.holds);
        if r.state == State::Deleting && before != State::Deleting && !before.is_final() {
            prop_assert!(rules.may_start, "deletion started with starts closed");
            // Never before the deadline of a live cause (domain-rules §5.3).
            let permitted = oracle.earliest_permitted();
            prop_assert!(permitted.is_some_and(|p| p <= now), "deletion at {now} before {permitted:?}: {oracle:?}");
            prop_assert!(oracle.holds.is_empty(), "deletion started under a hold");
            if let Some(g) = guard_until {
                prop_assert!(now >= g, "deletion at {now} before after_hold_release ends at {g}");
            }
        }
        // Deleted and purged never go back.
        if before.is_final() {
            prop_assert!(r.state.is_final(), "{before:?} went back to {:?}", r.state);
        }
        if before == State::Purged {
            prop_assert_eq!(r.state, State::Purged);
        }
        // A release with nothing in the way is deleted without waiting.
        if oracle.release.is_some_and(|at| at <= now)
            && oracle.holds.is_empty()
            && guard_until.is_none()
            && rules.may_start
        {
            prop_assert!(r.state.is_final(), "released but {:?}", r.state);
        }
        // With no live cause at all, nothing is deleted: a renewal or a
        // settlement before the deadline means never deleted.
        if !before.is_final() && oracle.earliest_permitted().is_none_or(|p| p > now) {
            prop_assert!(!r.state.is_final(), "deleted with no cause due: {oracle:?}");
        }
        for d in dispatched {
            if !in_flight.contains(&d) {
                in_flight.push(d);
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 10_000, max_shrink_iters: 2_000, ..ProptestConfig::default() })]

    #[test]
    fn lifecycle_invariants_hold_for_any_sequence(ops in prop::collection::vec(op(), 1..40), prepaid in any::<bool>()) {
        run(ops, prepaid)?;
    }
}
