//! The write path every change takes: its effects and audit records go into
//! the step's write sets (the audit chain sealed in memory as they are
//! made), and one flush of the store and one append to the audit file make
//! the whole step durable.

use super::{Engine, EngineError};
use crate::audit::{AuditHead, AuditKind, AuditLog, AuditRecord};
use crate::domain::lifecycle::{Effect, Resource};
use crate::store::{Store, WriteSet};
use crate::time::Timestamp;
use serde_json::Value;
use std::sync::{Arc, Mutex};

/// The audit chain as the engine extends it: each record is sealed (hashed
/// onto the one before) as it is made and goes into the store's outbox
/// with the change it records; the file gets the step's records at once.
pub(super) struct Journal {
    /// The audit file, shared with readers (`GET /v1/audit`).
    pub(super) log: Arc<Mutex<AuditLog>>,
    /// The last record sealed: the next one chains onto it.
    pub(super) head: AuditHead,
    /// Records sealed since the last append to the file.
    unwritten: Vec<AuditRecord>,
}

impl Journal {
    /// Brings the audit file level with the database, re-appending the
    /// records a crash left only in the outbox, and refuses to start when
    /// the two cannot be reconciled (the file ahead, or records missing
    /// from both).
    pub(super) fn open(store: &dyn Store, mut audit: AuditLog) -> Result<Journal, EngineError> {
        let head = store.audit_head()?;
        let file_head = audit.head().clone();
        if file_head.seq > head.seq {
            return Err(EngineError::Audit(format!(
                "audit file is ahead of the database (file seq {}, database seq {}): refusing to start",
                file_head.seq, head.seq
            )));
        }
        if file_head.seq < head.seq {
            let missing = store.outbox_after(file_head.seq)?;
            if missing.first().map(|r| r.seq) != Some(file_head.seq + 1)
                || missing.last().map(|r| r.seq) != Some(head.seq)
            {
                return Err(EngineError::Audit(format!(
                    "audit records {}..={} are neither in the file nor in the outbox: refusing to start",
                    file_head.seq + 1,
                    head.seq
                )));
            }
            audit.append(&missing).map_err(|e| EngineError::Audit(e.to_string()))?;
            tracing::warn!(records = missing.len(), "re-appended audit records left in the outbox by a crash");
        }
        store.commit(WriteSet { outbox_done_through: Some(head.seq), ..Default::default() })?;
        Ok(Journal { log: Arc::new(Mutex::new(audit)), head, unwritten: Vec::new() })
    }
}

impl Engine {
    /// Adds `w` to the step's pending writes ([`super::pending`]), every
    /// engine write going through here; [`Engine::settle`] hands them to the
    /// store in one commit. A resource with an executor call still queued or
    /// running is indexed at the end of its lease ([`super::dispatch::Calls::lease`])
    /// instead of its lifecycle due time: its copies are being deleted, and
    /// the call's outcome indexes it again. Only the index entry moves, never
    /// a deadline: the lifecycle decides what is due whenever it is read.
    pub(super) fn commit(&mut self, mut w: WriteSet) -> Result<(), EngineError> {
        if !self.calls.is_empty() && w.resources.iter().any(|(r, _)| self.calls.resource_busy(&r.id)) {
            let until = later(self.clock.now(), self.calls.lease());
            for (r, due) in &mut w.resources {
                if self.calls.resource_busy(&r.id) {
                    *due = Some(until);
                }
            }
        }
        // A subject with calls in flight likewise waits for their answers
        // (or its lease's end, should they be lost) rather than being read
        // again at every step: its requests' warnings are days apart, and
        // every answer rewrites it anyway.
        if !self.calls.is_empty() {
            let until = later(self.clock.now(), self.calls.lease());
            for (s, due) in &mut w.subjects {
                if self.calls.subject_busy(&crate::store::SubjectKey::of(s)) {
                    *due = Some(due.map_or(until, |d| d.max(until)));
                }
            }
        }
        self.pending.merge(w);
        Ok(())
    }

    /// Writes the pending changes to the store in one commit (not yet
    /// durable: [`Engine::make_durable`] flushes). Called before every read
    /// of the deadline index or scan of the records, which see the store
    /// alone, and before the flush.
    pub(super) fn settle(&mut self) -> Result<(), EngineError> {
        if !self.pending.is_empty() {
            self.store.commit(self.pending.take())?;
        }
        Ok(())
    }

    /// A resource as last written: this step's pending writes first, then
    /// the store.
    pub(super) fn read_resource(&self, id: &str) -> Result<Option<Resource>, EngineError> {
        Ok(self.pending.resource(&*self.store, id)?)
    }

    /// Seals an audit record onto the chain and puts it in `w`, to be
    /// written with the change it records.
    pub(super) fn record(
        &mut self,
        w: &mut WriteSet,
        now: Timestamp,
        kind: AuditKind,
        tenant: Option<&str>,
        resource: Option<&str>,
        data: Value,
    ) {
        self.metrics.audit_record(kind, &data);
        let head = &self.journal.head;
        let rec = AuditRecord::seal(head.seq + 1, now, kind.as_str(), tenant, resource, data, &head.hash);
        self.journal.head = AuditHead { seq: rec.seq, hash: rec.hash.clone() };
        tracing::info!(seq = rec.seq, kind = kind.as_str(), tenant, resource, "audit");
        self.journal.unwritten.push(rec.clone());
        w.audit.push(rec);
    }

    /// Writes the effects' audit records, noting on each copy the sequence
    /// number that completed it, and issues the deletion certificate when the
    /// resource is purged.
    pub(super) fn effects(&mut self, w: &mut WriteSet, now: Timestamp, r: &mut Resource, fx: Vec<Effect>) {
        self.calls.note_holds(r);
        for e in fx {
            match e {
                Effect::Record { kind, data } => {
                    if kind == AuditKind::CopyRestrictionOverdue {
                        tracing::error!(resource = %r.id, store = %data["store"], copy = %data["copy"],
                            "a restricted backup is kept past its store's max_restricted: purge it or record why");
                    }
                    let (store, copy) =
                        (data["store"].as_str().map(String::from), data["copy"].as_str().map(String::from));
                    let (tenant, id) = (r.tenant.clone(), r.id.clone());
                    self.record(w, now, kind, Some(&tenant), Some(&id), data);
                    if matches!(kind, AuditKind::CopyDeleted | AuditKind::CopyPurged | AuditKind::CopyRestricted) {
                        if let Some(c) = r
                            .copies
                            .iter_mut()
                            .find(|c| Some(&c.store) == store.as_ref() && Some(&c.copy) == copy.as_ref())
                        {
                            c.done_seq = Some(self.journal.head.seq);
                        }
                    }
                    if kind == AuditKind::ResourcePurged {
                        let cert = crate::certificate::Certificate::issue(r, &self.config, now, &self.journal.head);
                        w.certificates.push((r.id.clone(), cert.to_json()));
                    }
                }
                Effect::Dispatch { store, copy, action } => self.calls.queue(r, store, copy, action),
            }
        }
    }

    /// One store commit of the pending writes, one fsync of the database,
    /// then one of the audit file, for everything applied since the last
    /// call.
    pub(super) async fn make_durable(&mut self) -> Result<(), EngineError> {
        self.settle()?;
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || store.flush())
            .await
            .map_err(|e| EngineError::Audit(format!("flush task failed: {e}")))??;
        if self.journal.unwritten.is_empty() {
            return Ok(());
        }
        let records = std::mem::take(&mut self.journal.unwritten);
        let last = records.last().map(|r| r.seq);
        let audit = self.journal.log.clone();
        tokio::task::spawn_blocking(move || {
            let mut log = audit.lock().unwrap_or_else(|e| e.into_inner());
            log.append_sealed(&records)
        })
        .await
        .map_err(|e| EngineError::Audit(format!("audit task failed: {e}")))?
        .map_err(|e| EngineError::Audit(e.to_string()))?;
        // Lazily trim the outbox, with the next step's writes; if this is
        // lost in a crash the records are skipped on start because the file
        // already holds them.
        self.pending.merge(WriteSet { outbox_done_through: last, ..Default::default() });
        Ok(())
    }
}

/// `now` plus `d`, or `now` itself where that would leave the time range
/// (an index entry due at once is re-read; one never reached would be lost).
pub(super) fn later(now: Timestamp, d: std::time::Duration) -> Timestamp {
    chrono::Duration::from_std(d).ok().and_then(|d| now.checked_add_signed(d)).unwrap_or(now)
}
