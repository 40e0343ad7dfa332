//! The write path every change takes: its effects and audit records go into
//! the step's write sets (the audit chain sealed in memory as they are
//! made), and one flush of the store and one append to the audit file make
//! the whole step durable.

use super::{Engine, EngineError};
use crate::audit::{AuditHead, AuditKind, AuditRecord};
use crate::domain::lifecycle::{Effect, Resource};
use crate::store::WriteSet;
use crate::time::Timestamp;
use serde_json::Value;

impl Engine {
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
        let rec = AuditRecord::seal(self.head.seq + 1, now, kind.as_str(), tenant, resource, data, &self.head.hash);
        self.head = AuditHead { seq: rec.seq, hash: rec.hash.clone() };
        tracing::info!(seq = rec.seq, kind = kind.as_str(), tenant, resource, "audit");
        self.unwritten.push(rec.clone());
        w.audit.push(rec);
    }

    /// Writes the effects' audit records, noting on each copy the sequence
    /// number that completed it, and issues the deletion certificate when the
    /// resource is purged.
    pub(super) fn effects(&mut self, w: &mut WriteSet, now: Timestamp, r: &mut Resource, fx: Vec<Effect>) {
        {
            let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
            if r.holds.is_empty() {
                held.remove(&r.id);
            } else {
                held.insert(r.id.clone());
            }
        }
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
                            c.done_seq = Some(self.head.seq);
                        }
                    }
                    if kind == AuditKind::ResourcePurged {
                        let cert = crate::certificate::Certificate::issue(r, &self.config, now, &self.head);
                        w.certificates.push((r.id.clone(), cert.to_json()));
                    }
                }
                Effect::Dispatch { store, copy, action } => self.queue_call(r, store, copy, action),
            }
        }
    }

    /// One fsync of the database, then one of the audit file, for everything
    /// applied since the last call.
    pub(super) async fn make_durable(&mut self) -> Result<(), EngineError> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || store.flush())
            .await
            .map_err(|e| EngineError::Audit(format!("flush task failed: {e}")))??;
        if self.unwritten.is_empty() {
            return Ok(());
        }
        let records = std::mem::take(&mut self.unwritten);
        let last = records.last().map(|r| r.seq);
        let audit = self.audit.clone();
        tokio::task::spawn_blocking(move || {
            let mut log = audit.lock().unwrap_or_else(|e| e.into_inner());
            log.append(&records)
        })
        .await
        .map_err(|e| EngineError::Audit(format!("audit task failed: {e}")))?
        .map_err(|e| EngineError::Audit(e.to_string()))?;
        // Lazily trim the outbox; if this is lost in a crash the records are
        // skipped on start because the file already holds them.
        self.store.commit(WriteSet { outbox_done_through: last, ..Default::default() })?;
        Ok(())
    }
}
