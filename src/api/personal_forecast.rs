//! The personal erasures in the forecast (issue 12, product-spec §8: "the
//! forecast shows the personal erasures beside the business deletions"):
//! every class of every subject scheduled to be erased before a time, from
//! the subjects' deadline index, and those of tenants under a hold (which
//! the index leaves out: a held subject has nothing due) from the index of
//! holds. Never every record.

use super::wire::PersonalErasure;
use crate::domain::lifecycle::TenantHolds;
use crate::domain::privacy::{Schedule, Subject};
use crate::store::{HoldFilter, Store, StoreError, SubjectKey};
use crate::time::{fmt_rfc3339, Timestamp};
use std::collections::BTreeSet;

/// The most personal erasures one forecast lists; past it the answer says
/// it is cut short (`personal_truncated`).
pub const MAX_PERSONAL: usize = 10_000;

/// Subjects read per slice of the index.
const SLICE: usize = 1_000;

/// The personal erasures before `before`, by date then tenant, subject
/// and class, and whether the list was cut at [`MAX_PERSONAL`]. `gates`
/// are the daemon-wide blockers (dry run, pause, ...).
pub fn read(
    store: &dyn Store,
    before: Timestamp,
    gates: &[String],
) -> Result<(Vec<PersonalErasure>, bool), StoreError> {
    let mut seen: BTreeSet<SubjectKey> = BTreeSet::new();
    let mut out = Vec::new();
    let mut after: Option<(Timestamp, SubjectKey)> = None;
    'index: loop {
        let slice = store.subjects_due(after.as_ref().map(|(t, k)| (*t, k)), before, SLICE)?;
        let Some(last) = slice.last().cloned() else { break };
        for (_, key) in slice {
            if out.len() > MAX_PERSONAL {
                break 'index;
            }
            if seen.insert(key.clone()) {
                if let Some(s) = store.subject(&key)? {
                    // Due for a request's warning, say, while a hold came
                    // since: its erasures show the hold.
                    items(&s, &store.tenant_holds(&key.tenant)?, before, gates, &mut out);
                }
            }
        }
        after = Some(last);
    }
    // Tenants under a hold: their subjects have nothing due, but their
    // erasures are there, blocked.
    let mut tenants = BTreeSet::new();
    let mut cursor = None;
    loop {
        let page = store.holds(&HoldFilter::default(), cursor.as_ref(), SLICE)?;
        let Some(last) = page.last().map(|e| e.key.clone()) else { break };
        tenants.extend(page.into_iter().filter(|e| e.key.resource.is_none()).map(|e| e.key.tenant));
        cursor = Some(last);
    }
    for tenant in tenants {
        let holds = store.tenant_holds(&tenant)?;
        for id in store.tenant_subjects(&tenant)? {
            let key = SubjectKey { tenant: tenant.clone(), subject: id };
            if out.len() > MAX_PERSONAL || !seen.insert(key.clone()) {
                continue;
            }
            if let Some(s) = store.subject(&key)? {
                items(&s, &holds, before, gates, &mut out);
            }
        }
    }
    out.sort_by(|a, b| {
        (&a.erase_after, &a.tenant, &a.subject, &a.class).cmp(&(&b.erase_after, &b.tenant, &b.subject, &b.class))
    });
    let truncated = out.len() > MAX_PERSONAL;
    out.truncate(MAX_PERSONAL);
    Ok((out, truncated))
}

/// The classes of `s` whose erasure is scheduled before `before` and not
/// yet started, with what blocks them.
fn items(s: &Subject, holds: &TenantHolds, before: Timestamp, gates: &[String], out: &mut Vec<PersonalErasure>) {
    for c in &s.classes {
        let Some(date) = c.erase_after.map(|d| d.max(c.keep_until.unwrap_or(d))) else { continue };
        if c.started_at.is_some() || date >= before {
            continue;
        }
        let mut blockers: Vec<String> = holds.holds.iter().map(|h| format!("hold:{}", h.hold_id)).collect();
        blockers.extend(gates.iter().cloned());
        out.push(PersonalErasure {
            tenant: s.tenant.clone(),
            subject: s.id.clone(),
            class: c.class.clone(),
            erasure: c.erasure.as_str().into(),
            erase_after: fmt_rfc3339(date),
            scheduled_by: match &c.scheduled_by {
                Some(Schedule::Request(id)) => id.clone(),
                _ => "account_closed".into(),
            },
            policy_version: c.policy_version.clone(),
            blockers,
        });
    }
}
