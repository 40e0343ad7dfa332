//! Operator and schedule work on the whole store: putting a new config in
//! force (reload), the periodic sweeps, applying a product's policy to its
//! running buffers, and the check that a config keeps every product still
//! in use.

use super::deadlines::due_in;
use super::{Engine, EngineError, PolicyReport, ProductsMissing, ReloadReport, Rescheduled, SweepKind, SweepReport};
use crate::audit::AuditKind;
use crate::config::Config;
use crate::domain::lifecycle::{CopyState, Resource};
use crate::store::WriteSet;
use crate::time::{fmt_rfc3339, Timestamp};
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio::sync::oneshot;
use tokio::task::JoinError;

/// Resources a sweep reads per slice. A sweep runs a slice at a time, with
/// the commands that arrived meanwhile in between, so reading a million
/// records never holds a request for the whole scan (issue 11: 5.3 s).
pub(super) const SWEEP_SLICE: usize = 1000;

/// What a sweep does with its report once its last slice is durable:
/// answer whoever asked for it (a sweep, or a reload that waits for its
/// reconcile).
type WhenDone = Box<dyn FnOnce(SweepReport) + Send>;

/// What a pass over every resource is for, with what it found so far and
/// who waits for it.
enum Work {
    /// A sweep of `[schedule]`, or a reload's reconcile.
    Sweep { kind: SweepKind, report: SweepReport, when_done: Option<WhenDone> },
    /// `apply-policy` for a product: its report so far, the policy version
    /// the pass applies, why it ended early if it did, and who waits for
    /// it (issue 11: it read every record on the engine's thread, minutes
    /// at 10 million; it now reads in the sweeps' slices, off it).
    Policy {
        report: PolicyReport,
        applying: String,
        failed: Option<EngineError>,
        reply: Option<oneshot::Sender<Result<PolicyReport, EngineError>>>,
    },
}

/// What a slice read on a blocking thread looks for: a sweep's records out
/// of step, or a product's records.
#[derive(Clone)]
enum Reader {
    Sweep(SweepKind),
    Product(String),
}

/// A pass under way: what it is for, and how far it has read.
pub(super) struct SweepRun {
    work: Work,
    /// The last resource id read; the next slice starts after it.
    after: Option<String>,
}

impl SweepRun {
    /// A sweep from the first resource; `reply` is answered when it is done.
    pub(super) fn new(kind: SweepKind, reply: Option<oneshot::Sender<Result<SweepReport, EngineError>>>) -> SweepRun {
        let when_done = reply.map(|reply| -> WhenDone {
            Box::new(move |report| {
                let _ = reply.send(Ok(report));
            })
        });
        SweepRun::sweep(kind, when_done)
    }

    /// A sweep from the first resource that calls `then` when it is done.
    pub(super) fn then(kind: SweepKind, then: impl FnOnce(SweepReport) + Send + 'static) -> SweepRun {
        SweepRun::sweep(kind, Some(Box::new(then)))
    }

    fn sweep(kind: SweepKind, when_done: Option<WhenDone>) -> SweepRun {
        SweepRun { work: Work::Sweep { kind, report: SweepReport::default(), when_done }, after: None }
    }

    /// `apply-policy` for `product` (its policy `version` in force now),
    /// from the first resource; `reply` gets its report once the last
    /// slice is durable.
    pub(super) fn policy(
        product: String,
        version: String,
        reply: oneshot::Sender<Result<PolicyReport, EngineError>>,
    ) -> SweepRun {
        let report = PolicyReport { product, ..Default::default() };
        SweepRun { work: Work::Policy { report, applying: version, failed: None, reply: Some(reply) }, after: None }
    }

    fn reader(&self) -> Reader {
        match &self.work {
            Work::Sweep { kind, .. } => Reader::Sweep(*kind),
            Work::Policy { report, .. } => Reader::Product(report.product.clone()),
        }
    }
}

/// What a reload from `old` to `new` changes in the products.
fn compare(old: &Config, new: &Config) -> ReloadReport {
    let mut report = ReloadReport {
        products: new.products.iter().map(|(n, p)| (n.clone(), p.version.clone())).collect(),
        ..Default::default()
    };
    for (name, p) in &new.products {
        match old.products.get(name) {
            None => report.added.push(name.clone()),
            Some(o) if o.version != p.version => report.changed.push(name.clone()),
            Some(_) => {}
        }
    }
    report.removed = old.products.keys().filter(|n| !new.products.contains_key(*n)).cloned().collect();
    report
}

/// The due time sweep `kind` wants for `r` at `now`, or None when the sweep
/// leaves `r` alone.
fn sweep_target(kind: SweepKind, config: &Config, r: &Resource, now: Timestamp) -> Option<Option<Timestamp>> {
    match kind {
        SweepKind::Reconcile => Some(due_in(config, r)),
        SweepKind::BackupExpiry => {
            let expired = r.copies.iter().any(|c| {
                matches!(c.state, CopyState::Restricted | CopyState::Restricting)
                    && c.expires_at.is_some_and(|t| t <= now)
            });
            // Only where the state says the purge is due: a hold or
            // `after_hold_release` may rightly keep it waiting.
            expired.then(|| due_in(config, r))
        }
    }
}

/// A slice a sweep read: how many resources, the last id, whether it was
/// the last slice, and the resources whose indexed due time looked out of
/// step with what the sweep wants, each as read with that due time.
pub(super) struct SliceRead {
    checked: u64,
    last: Option<String>,
    done: bool,
    suspects: Vec<(Resource, Option<Timestamp>)>,
}

/// A slice read on a blocking thread, or why it could not be.
pub(super) type SliceResult = Result<SliceRead, crate::store::StoreError>;

impl SliceRead {
    /// Sorts a slice of `limit` asked for (resources with their indexed due
    /// times) for `reader` under `config` at `now`: for a sweep, the
    /// records out of step; for `apply-policy`, the product's records.
    fn of(
        reader: &Reader,
        config: &Config,
        slice: Vec<(Resource, Option<Timestamp>)>,
        limit: usize,
        now: Timestamp,
    ) -> SliceRead {
        let checked = slice.len() as u64;
        let done = slice.len() < limit;
        let last = slice.last().map(|(r, _)| r.id.clone());
        let suspects = slice
            .into_iter()
            .filter(|(r, due)| match reader {
                Reader::Sweep(kind) => sweep_target(*kind, config, r, now).is_some_and(|want| out_of_step(want, *due)),
                Reader::Product(product) => r.product == *product,
            })
            .collect();
        SliceRead { checked, last, done, suspects }
    }
}

/// Whether an indexed due time differs from the wanted one; the index
/// keeps whole milliseconds, so compared at that precision.
fn out_of_step(want: Option<Timestamp>, due: Option<Timestamp>) -> bool {
    want.map(|t| t.timestamp_millis()) != due.map(|t| t.timestamp_millis())
}

impl Engine {
    /// Puts a new config in force: policies, stores, executors, notifier,
    /// safety settings and schedule. Running buffers keep the deadlines and
    /// policy versions they were set with (a reload never makes a pending
    /// deadline earlier on its own); then every due time is re-derived by
    /// the reconcile sweep the caller queues ([`SweepRun::then`]: read off
    /// the engine's thread, the reload answered once it is done). Until it
    /// reaches a resource, an index entry made under the old config at worst
    /// has the engine look at it early (the lifecycle decides what is due)
    /// or late by the sweep's length.
    pub(super) fn reload(&mut self, config: Arc<Config>) -> Result<Result<ReloadReport, EngineError>, EngineError> {
        // The products check scans the store: the group's writes first.
        self.settle()?;
        if let Err(why) = self.check_products(&config)? {
            let mut w = WriteSet::default();
            let data = json!({ "error": why.to_string() });
            self.record(&mut w, self.clock.now(), AuditKind::ConfigReloadFailed, None, None, data);
            self.commit(w)?;
            return Ok(Err(EngineError::ProductsInUse(why)));
        }
        let report = compare(&self.config, &config);
        // The guard's verdict on a burst was reached under the old limits.
        self.safety.burst = None;
        self.calls.configure(&config);
        self.notices.configure(&config);
        self.config = config.clone();
        let now = self.clock.now();
        let mut w = WriteSet::default();
        let data = json!({"path": config.path.display().to_string(), "products": report.products,
                          "changed": report.changed, "added": report.added, "removed": report.removed,
                          "dry_run": config.safety.dry_run, "privacy_version": config.privacy.version});
        self.record(&mut w, now, AuditKind::ConfigReloaded, None, None, data);
        self.commit(w)?;
        tracing::info!(changed = ?report.changed, added = ?report.added, removed = ?report.removed, "config reloaded");
        Ok(Ok(report))
    }

    /// Records a reload that was refused (the old config stays in force).
    pub(super) fn reload_failed(&mut self, error: String) -> Result<(), EngineError> {
        let now = self.clock.now();
        let mut w = WriteSet::default();
        self.record(&mut w, now, AuditKind::ConfigReloadFailed, None, None, json!({ "error": error }));
        self.commit(w)?;
        Ok(())
    }

    /// The next slice of the oldest sweep asked for, read and repaired at
    /// once (the loop reads off the engine's thread instead:
    /// [`Engine::start_sweep_read`]); tests drive sweeps slice by slice
    /// with it.
    #[cfg(test)]
    pub(super) async fn sweep_step(&mut self) -> Result<(), EngineError> {
        self.start_sweep_read();
        let Some(read) = self.sweep_read.take() else { return Ok(()) };
        let read = read.await;
        self.sweep_read_done(read).await
    }

    /// Starts reading the next slice of the oldest sweep asked for on a
    /// blocking thread, unless one is being read (issue 11: reads of stored
    /// state never on the engine's thread; a slice of 1,000 records read
    /// from a 10M database held every request for hundreds of
    /// milliseconds). The records are compared with the config as it is
    /// now; the engine re-checks only those that look out of step
    /// ([`Engine::sweep_read_done`]).
    pub(super) fn start_sweep_read(&mut self) {
        if self.sweep_read.is_some() {
            return;
        }
        let Some(run) = self.sweeps.front() else { return };
        let (store, config, now) = (self.store.clone(), self.config.clone(), self.clock.now());
        let (reader, after, limit) = (run.reader(), run.after.clone(), self.sweep_slice);
        self.sweep_read = Some(tokio::task::spawn_blocking(move || {
            let slice = store.resources_after(after.as_deref(), limit)?;
            Ok(SliceRead::of(&reader, &config, slice, limit, now))
        }));
    }

    /// A slice was read: what looked out of step is re-checked against the
    /// records as they are now and repaired, the repairs made durable as
    /// any step is; the sweep's caller is answered once the last slice is.
    /// A slice that needs nothing costs the engine no step and no flush.
    pub(super) async fn sweep_read_done(&mut self, read: Result<SliceResult, JoinError>) -> Result<(), EngineError> {
        let Some(mut run) = self.sweeps.pop_front() else { return Ok(()) };
        let read = match read {
            Ok(Ok(read)) => read,
            Ok(Err(e)) => return Err(e.into()),
            Err(e) => return Err(EngineError::Audit(format!("sweep read task failed: {e}"))),
        };
        let (wrote, done) = match run.work {
            Work::Sweep { .. } => self.repair_slice(&mut run, read)?,
            Work::Policy { .. } => self.policy_slice(&mut run, read)?,
        };
        if wrote {
            self.step(Vec::new()).await?;
        }
        if done {
            match run.work {
                Work::Sweep { report, when_done: Some(then), .. } => then(report),
                Work::Policy { report, failed, reply: Some(reply), .. } => {
                    let _ = reply.send(failed.map_or(Ok(report), Err));
                }
                _ => {}
            }
        } else {
            self.sweeps.push_front(run);
        }
        Ok(())
    }

    /// Repairs what a slice found out of step, re-checked against the
    /// record as it is now (one the engine rewrote since the read was
    /// indexed with it); at the last slice, records the repairs once, with
    /// the totals. (Whether it wrote anything, whether the sweep is done.)
    fn repair_slice(&mut self, run: &mut SweepRun, read: SliceRead) -> Result<(bool, bool), EngineError> {
        self.settle()?;
        let Work::Sweep { kind, report, .. } = &mut run.work else { return Ok((false, true)) };
        let kind = *kind;
        let now = self.clock.now();
        report.checked += read.checked;
        if read.last.is_some() {
            run.after = read.last;
        }
        let mut w = WriteSet::default();
        for (seen, due) in read.suspects {
            let Some(r) = self.read_resource(&seen.id)? else { continue };
            if r != seen {
                continue;
            }
            let Some(want) = sweep_target(kind, &self.config, &r, now) else { continue };
            // A resource with calls in flight is indexed at its lease's end
            // on purpose (see Engine::commit): not a fault to repair.
            if out_of_step(want, due) && !self.calls.resource_busy(&r.id) {
                report.fixed += 1;
                w.put_resource(r, want);
            }
        }
        if read.done && report.fixed > 0 {
            let data = json!({"sweep": kind.as_str(), "checked": report.checked, "fixed": report.fixed});
            self.record(&mut w, now, AuditKind::SweepRepaired, None, None, data);
            tracing::warn!(
                sweep = kind.as_str(),
                checked = report.checked,
                fixed = report.fixed,
                "sweep repaired due times"
            );
        } else if read.done {
            tracing::debug!(sweep = kind.as_str(), checked = report.checked, "sweep found nothing to repair");
        }
        let wrote = !w.resources.is_empty() || !w.audit.is_empty();
        if wrote {
            self.commit(w)?;
        }
        Ok((wrote, read.done))
    }

    /// The explicit operator action that applies a product's policy in
    /// force to its running buffers (issue 5, reload): a longer buffer moves
    /// the deletion later; a shorter one moves it earlier but never closer
    /// than `safety.min_notice` from now (one already closer stays where it
    /// was: general terms 3.2.9). Queued as a
    /// pass over every resource ([`SweepRun::policy`]), read a slice at a
    /// time off the engine's thread; `reply` is answered when it is done,
    /// or at once for a product the config does not have.
    pub(super) fn apply_policy(&mut self, product: String, reply: oneshot::Sender<Result<PolicyReport, EngineError>>) {
        if let Some(version) = self.config.products.get(&product).map(|p| p.version.clone()) {
            self.sweeps.push_back(SweepRun::policy(product, version, reply));
        } else {
            let _ = reply.send(Err(EngineError::UnknownProduct(product)));
        }
    }

    /// Applies the product's policy to the records of the product a slice
    /// found, each as it is now; at the last slice, records the pass once,
    /// with its totals. (Whether it wrote anything, whether the pass is
    /// done.) A reload that changes the product's policy during the pass
    /// starts it again under the new one, so that no resource is left on
    /// the version the reload replaced while the report names the new one
    /// (a shorter buffer reverted by the reload would otherwise delete
    /// early); one that removes the product ends it with an error.
    fn policy_slice(&mut self, run: &mut SweepRun, read: SliceRead) -> Result<(bool, bool), EngineError> {
        self.settle()?;
        let Work::Policy { report, applying, failed, .. } = &mut run.work else { return Ok((false, true)) };
        let Some(policy) = self.config.products.get(&report.product).cloned() else {
            *failed = Some(EngineError::UnknownProduct(report.product.clone()));
            return Ok((false, true));
        };
        if policy.version != *applying {
            tracing::warn!(product = %report.product, from = %applying, to = %policy.version,
                "the product's policy changed during apply-policy: starting it again under the new one");
            *applying = policy.version.clone();
            *report = PolicyReport { product: report.product.clone(), ..Default::default() };
            run.after = None;
            return Ok((false, false));
        }
        if read.last.is_some() {
            run.after = read.last;
        }
        report.policy_version = policy.version.clone();
        let now = self.clock.now();
        let min_notice = self.config.safety.min_notice.to_chrono();
        let mut wrote = false;
        for (seen, _) in read.suspects {
            let Some(mut r) = self.read_resource(&seen.id)? else { continue };
            let before = r.deletion_date();
            let fx = r.reapply_policy(&policy, now, min_notice);
            if fx.is_empty() {
                report.unchanged += 1;
                continue;
            }
            if let (Some(from), Some(to)) = (before, r.deletion_date()) {
                if from != to {
                    report.rescheduled.push(Rescheduled {
                        resource: r.id.clone(),
                        from: fmt_rfc3339(from),
                        to: fmt_rfc3339(to),
                    });
                }
            }
            let due = r.next_due(&policy);
            let mut w = WriteSet::default();
            self.effects(&mut w, now, &mut r, fx);
            w.put_resource(r, due);
            self.commit(w)?;
            wrote = true;
        }
        if read.done {
            let mut w = WriteSet::default();
            let data = json!({"product": report.product, "policy_version": report.policy_version,
                              "min_notice": self.config.safety.min_notice.to_string(),
                              "rescheduled": report.rescheduled.len(), "unchanged": report.unchanged});
            self.record(&mut w, now, AuditKind::PolicyApplied, None, None, data);
            self.commit(w)?;
            wrote = true;
        }
        Ok((wrote, read.done))
    }

    /// Err(message) when `config` leaves out a product that a resource not
    /// yet settled belongs to: without its policy, events about the
    /// resource (a tenant-wide legal hold, a renewal) could not be applied
    /// to it, and it would be deleted later as if they had never come.
    /// Read from the store's counts of unsettled resources by product, not
    /// from every record (issue 11).
    pub(super) fn check_products(&self, config: &Config) -> Result<Result<(), ProductsMissing>, EngineError> {
        let missing: BTreeMap<String, u64> =
            self.store.products_in_use()?.into_iter().filter(|(p, _)| !config.products.contains_key(p)).collect();
        if missing.is_empty() {
            return Ok(Ok(()));
        }
        Ok(Err(ProductsMissing { path: config.path.clone(), products: missing }))
    }

    /// The records an older version wrote that need bringing up to date
    /// under `config` (their arrears grace end, restriction limits), read
    /// from the store's list of such records rather than every record.
    pub(super) fn outdated_records(&self, config: &Config) -> Result<Vec<Resource>, EngineError> {
        let mut outdated = Vec::new();
        for id in self.store.needing_migration()? {
            let Some(mut r) = self.read_resource(&id)? else { continue };
            if let Some(p) = config.products.get(&r.product) {
                if r.fix_arrears_grace(p) | r.fix_restriction_limit(p) {
                    outdated.push(r);
                }
            }
        }
        Ok(outdated)
    }

    /// The deletion start times within the guard's long window, approved
    /// ones excepted, from the store's index of deletion starts.
    pub(super) fn recent_starts(&self, config: &Config) -> Result<Vec<Timestamp>, EngineError> {
        let since = crate::domain::lifecycle::earlier(self.clock.now(), config.safety.guard.long_window.to_chrono());
        Ok(self.store.deletions_started_after(since)?)
    }
}
