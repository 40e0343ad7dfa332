//! Checking a deletion certificate against the audit log, offline.
//!
//! A certificate (issued when a resource is purged) names, for each copy, the
//! audit record that proves its deletion, and the chain hash at completion.
//! [`check`] verifies the whole chain, then that each named record is there
//! with the right kind, resource, store and copy, and that the record at
//! `purged_seq` is the resource's `resource.purged` with hash `chain_hash`.
//! An edited certificate or log fails one of these.

use crate::audit::{verify, AuditHead, AuditKind, AuditRecord};
use crate::config::Config;
use crate::domain::lifecycle::Resource;
use crate::domain::policy::{Cause, StoreClass, TerminationReason};
use crate::time::{fmt_rfc3339, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// What a certificate says it is, and the only version this build issues.
pub const CERTIFICATE_V1: &str = "retentiond deletion certificate v1";

/// The deletion certificate of a purged resource: what was deleted, why,
/// under which policy, and for each copy its outcome with the audit
/// sequence number of the record that proves it, plus the chain hash at
/// completion, so it can be checked against the audit log offline. Issued
/// and checked by this one type; its JSON is what `GET
/// /v1/certificates/{id}` serves.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Certificate {
    /// [`CERTIFICATE_V1`].
    pub certificate: String,
    /// The resource.
    pub resource: String,
    /// Its tenant.
    pub tenant: String,
    /// Its product.
    pub product: String,
    /// The cause of the deciding buffer.
    pub cause: Option<Cause>,
    /// The termination reason, for a termination.
    pub reason: Option<TerminationReason>,
    /// The policy version that set the deadline.
    pub policy_version: Option<String>,
    /// When the deciding buffer started.
    pub buffer_started_at: Option<String>,
    /// The deadline.
    pub delete_after: Option<String>,
    /// When deletion started.
    pub deletion_started_at: Option<String>,
    /// When the last copy went.
    pub purged_at: String,
    /// Every copy, with its outcome and proof.
    pub copies: Vec<CertifiedCopy>,
    /// Sequence number of the `resource.purged` record.
    pub purged_seq: u64,
    /// The chain hash at that record.
    pub chain_hash: String,
}

/// One copy in a [`Certificate`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CertifiedCopy {
    /// The store.
    pub store: String,
    /// The copy's id there.
    pub copy: String,
    /// The store's class.
    pub class: StoreClass,
    /// `deleted`, `purged` or `removed_by_backup_system`.
    pub outcome: String,
    /// When it was confirmed.
    pub at: Option<String>,
    /// The audit record that proves it.
    pub audit_seq: Option<u64>,
}

impl Certificate {
    /// The certificate of `r`, purged at `now`, whose `resource.purged`
    /// record is the chain's `head`.
    pub fn issue(r: &Resource, config: &Config, now: Timestamp, head: &AuditHead) -> Certificate {
        let d = r.deciding.as_ref();
        let copies = r
            .copies
            .iter()
            .map(|c| CertifiedCopy {
                store: c.store.clone(),
                copy: c.copy.clone(),
                class: config.stores.get(&c.store).map(|s| s.class).unwrap_or(c.class),
                outcome: c.outcome.clone().unwrap_or_else(|| "deleted".into()),
                at: c.done_at.map(fmt_rfc3339),
                audit_seq: c.done_seq,
            })
            .collect();
        Certificate {
            certificate: CERTIFICATE_V1.into(),
            resource: r.id.clone(),
            tenant: r.tenant.clone(),
            product: r.product.clone(),
            cause: d.map(|b| b.cause),
            reason: d.and_then(|b| b.reason),
            policy_version: d.map(|b| b.policy_version.clone()),
            buffer_started_at: d.map(|b| fmt_rfc3339(b.started_at)),
            delete_after: d.map(|b| fmt_rfc3339(b.delete_after)),
            deletion_started_at: r.deletion_started_at.map(fmt_rfc3339),
            purged_at: fmt_rfc3339(now),
            copies,
            purged_seq: head.seq,
            chain_hash: head.hash.clone(),
        }
    }

    /// As stored and served.
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).expect("a certificate serializes")
    }
}

/// Why a certificate does not hold against the log.
#[derive(Debug, thiserror::Error)]
#[error("certificate does not hold: {0}")]
pub struct CertificateError(pub String);

fn fail(msg: impl Into<String>) -> CertificateError {
    CertificateError(msg.into())
}

/// Checks `cert` against the audit log at `log` (audit.jsonl or its
/// directory). Ok with a one-line summary.
pub fn check(cert: &Value, log: &Path) -> Result<String, CertificateError> {
    // The shape first: a certificate is exactly what `Certificate` issues.
    let typed: Certificate =
        serde_json::from_value(cert.clone()).map_err(|e| fail(format!("not a deletion certificate: {e}")))?;
    if typed.certificate != CERTIFICATE_V1 {
        return Err(fail(format!("unknown certificate version {:?}", typed.certificate)));
    }
    let report = verify(log, None).map_err(|f| fail(format!("audit log: {f}")))?;
    let dir = if log.is_dir() { log.to_path_buf() } else { log.parent().unwrap_or(Path::new(".")).to_path_buf() };
    let resource = cert["resource"].as_str().ok_or_else(|| fail("no resource"))?;
    let purged_seq = cert["purged_seq"].as_u64().ok_or_else(|| fail("no purged_seq"))?;
    let chain_hash = cert["chain_hash"].as_str().ok_or_else(|| fail("no chain_hash"))?;
    // Read-only: the records the certificate names, straight from the files
    // (verify() above has checked every line of them).
    let mut wanted: BTreeSet<u64> =
        cert["copies"].as_array().into_iter().flatten().filter_map(|c| c["audit_seq"].as_u64()).collect();
    wanted.insert(purged_seq);
    let found = read_records(&dir, &wanted, report.records)?;
    let record = |seq: u64| -> Result<AuditRecord, CertificateError> {
        found.get(&seq).cloned().ok_or_else(|| fail(format!("record {seq} is not in the log")))
    };
    let purged = record(purged_seq)?;
    if purged.kind != AuditKind::ResourcePurged.as_str() || purged.resource.as_deref() != Some(resource) {
        return Err(fail(format!("record {purged_seq} is not the resource.purged of {resource}")));
    }
    if purged.hash != chain_hash {
        return Err(fail(format!("chain hash at record {purged_seq} differs from the certificate")));
    }
    for fact in ["policy_version", "delete_after", "buffer_started_at", "cause", "reason", "product"] {
        if purged.data[fact] != cert[fact] {
            return Err(fail(format!("{fact} differs from record {purged_seq}")));
        }
    }
    if purged.tenant.as_deref() != cert["tenant"].as_str() || Some(purged.at.as_str()) != cert["purged_at"].as_str() {
        return Err(fail(format!("tenant or purged_at differs from record {purged_seq}")));
    }
    // Complete: the same copies, with the same outcomes, as the purge record lists.
    let listed = |v: &Value| -> Vec<(String, String, String)> {
        v.as_array()
            .into_iter()
            .flatten()
            .map(|c| (c["store"].to_string(), c["copy"].to_string(), c["outcome"].to_string()))
            .collect()
    };
    if listed(&cert["copies"]) != listed(&purged.data["copies"]) {
        return Err(fail(format!("the copies differ from those record {purged_seq} lists")));
    }
    let copies = cert["copies"].as_array().ok_or_else(|| fail("no copies"))?;
    for c in copies {
        let seq = c["audit_seq"].as_u64().ok_or_else(|| fail(format!("copy {} has no audit_seq", c["copy"])))?;
        let r = record(seq)?;
        let kind_ok = match c["outcome"].as_str() {
            Some("purged") => r.kind == AuditKind::CopyPurged.as_str(),
            Some("deleted") => r.kind == AuditKind::CopyDeleted.as_str() && r.data.get("by").is_none(),
            Some("removed_by_backup_system") => {
                r.kind == AuditKind::CopyDeleted.as_str() && r.data["by"] == "backup_system"
            }
            _ => false,
        } && Some(r.at.as_str()) == c["at"].as_str();
        if !kind_ok
            || r.resource.as_deref() != Some(resource)
            || r.data["store"] != c["store"]
            || r.data["copy"] != c["copy"]
        {
            return Err(fail(format!(
                "record {seq} does not prove the deletion of copy {} in store {}",
                c["copy"], c["store"]
            )));
        }
        if seq > purged_seq {
            return Err(fail(format!("record {seq} comes after the purge record")));
        }
    }
    Ok(format!(
        "ok: certificate of {resource} holds: {} copies, purged at record {purged_seq}, log of {} records verified",
        copies.len(),
        report.records
    ))
}

/// The records with the wanted sequence numbers, from the segments
/// (`audit-NNNNNN.jsonl`, oldest first) and `audit.jsonl` (the receipt
/// of a privacy request reads its records the same way).
pub(crate) fn read_records(
    dir: &Path,
    wanted: &BTreeSet<u64>,
    verified: u64,
) -> Result<BTreeMap<u64, AuditRecord>, CertificateError> {
    let files = crate::audit::log_files(dir).map_err(|e| fail(format!("{}: {e}", dir.display())))?;
    let mut out = BTreeMap::new();
    for f in files.iter().filter(|f| f.exists()) {
        let text = std::fs::read_to_string(f).map_err(|e| fail(format!("{}: {e}", f.display())))?;
        for line in text.lines() {
            let r: AuditRecord = serde_json::from_str(line).map_err(|e| fail(format!("{}: {e}", f.display())))?;
            // Only records of the verified chain, and only intact ones.
            if wanted.contains(&r.seq) && r.seq <= verified && r.compute_hash() == r.hash {
                out.insert(r.seq, r);
            }
        }
    }
    Ok(out)
}
