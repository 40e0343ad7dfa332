//! The receipt of a privacy request (issue 12, product-spec §8): what was
//! decided and, for an erasure, each class in each store with its outcome
//! and the audit record that proves it, checked against the audit log
//! offline the way a deletion certificate is ([`crate::certificate`]).
//!
//! A receipt is issued from the subject's record when asked for (`GET
//! /v1/certificates/requests/{id}`), once the request is answered
//! (refused, completed or partially completed); it cites sequence numbers
//! only, so [`check`] can find each record in the log and compare it.

use crate::audit::{verify, AuditKind, AuditRecord};
use crate::domain::privacy::{PersonalState, RequestKind, RequestState, Subject};
use crate::time::fmt_rfc3339;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::Path;

/// What a receipt says it is, and the only version this build issues.
pub const RECEIPT_V1: &str = "retentiond request receipt v1";

/// The receipt of one request.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Receipt {
    /// [`RECEIPT_V1`].
    pub receipt: String,
    /// The request.
    pub request: String,
    /// The open request it repeated, whose answer (and records) it shares.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub linked_to: Option<String>,
    /// The tenant.
    pub tenant: String,
    /// Whose data.
    pub subject: String,
    /// `erasure` or `restriction`.
    pub kind: String,
    /// `completed`, `partially_completed` or `refused`.
    pub state: String,
    /// When it was made.
    pub received_at: String,
    /// When it had to be answered by.
    pub due: String,
    /// Whether it was answered late.
    pub overdue: bool,
    /// `execute` or `refuse`.
    pub decision: String,
    /// The refusal's ground.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refusal_ground: Option<String>,
    /// For an erasure: each class in each store.
    pub entries: Vec<ReceiptEntry>,
    /// The `request.received` record (of this request itself).
    pub received_seq: u64,
    /// The `request.decided` record.
    pub decided_seq: u64,
    /// The latest `request.completed` record, once completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_seq: Option<u64>,
}

/// One class in one store.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReceiptEntry {
    /// The class.
    pub class: String,
    /// The store.
    pub store: String,
    /// `erased`, `anonymized`, `kept` (under its legal minimum, ground
    /// `legal_obligation`, until `kept_until`) or `pending`.
    pub outcome: String,
    /// When it was confirmed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<String>,
    /// The `personal.erased` or `personal.anonymized` record that proves it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit_seq: Option<u64>,
    /// Until when a kept class is kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kept_until: Option<String>,
}

/// Why no receipt can be issued yet.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum NotIssued {
    /// The subject has no such request.
    #[error("unknown request")]
    Unknown,
    /// It is not answered yet (received, approved or executing).
    #[error("request is {0}: a receipt is issued once it is refused or completed")]
    Open(&'static str),
}

impl Receipt {
    /// The receipt of request `id` of subject `s`.
    pub fn issue(s: &Subject, id: &str) -> Result<Receipt, NotIssued> {
        let r = s.requests.iter().find(|r| r.id == id).ok_or(NotIssued::Unknown)?;
        if !r.state.is_closed() {
            return Err(NotIssued::Open(r.state.as_str()));
        }
        // A linked request shares its primary's decision and records.
        let p = r.linked_to.as_ref().and_then(|p| s.requests.iter().find(|q| &q.id == p)).unwrap_or(r);
        let decision = if r.state == RequestState::Refused { Answer::Refuse } else { Answer::Execute };
        let mut entries = Vec::new();
        if r.kind == RequestKind::Erasure && r.state != RequestState::Refused {
            for o in &p.outcomes {
                let Some(class) = s.classes.iter().find(|c| c.class == o.class) else { continue };
                for c in &class.copies {
                    let erased = c.state == PersonalState::Erased;
                    let outcome = match (erased, o.kept_until) {
                        (true, _) => {
                            class.erasure.as_str().replace("delete", "erased").replace("anonymize", "anonymized")
                        }
                        (false, Some(_)) => "kept".to_string(),
                        (false, None) => "pending".to_string(),
                    };
                    entries.push(ReceiptEntry {
                        class: class.class.clone(),
                        store: c.store.clone(),
                        outcome,
                        at: if erased { c.done_at.map(fmt_rfc3339) } else { None },
                        audit_seq: if erased { c.done_seq } else { None },
                        kept_until: if erased { None } else { o.kept_until.map(fmt_rfc3339) },
                    });
                }
            }
        }
        Ok(Receipt {
            receipt: RECEIPT_V1.into(),
            request: r.id.clone(),
            linked_to: r.linked_to.clone(),
            tenant: s.tenant.clone(),
            subject: s.id.clone(),
            kind: r.kind.as_str().into(),
            state: r.state.as_str().into(),
            received_at: fmt_rfc3339(r.received_at),
            due: fmt_rfc3339(r.due),
            overdue: r.overdue,
            decision: decision.as_str().into(),
            refusal_ground: r.refusal.map(|g| g.as_str().into()),
            entries,
            received_seq: r.proof.received.unwrap_or_default(),
            decided_seq: p.proof.decided.unwrap_or_default(),
            completed_seq: p.proof.completed,
        })
    }
}

/// The two answers, as the receipt names them.
enum Answer {
    Execute,
    Refuse,
}

impl Answer {
    fn as_str(&self) -> &'static str {
        match self {
            Answer::Execute => "execute",
            Answer::Refuse => "refuse",
        }
    }
}

/// Why a receipt does not hold against the log.
#[derive(Debug, thiserror::Error)]
#[error("receipt does not hold: {0}")]
pub struct ReceiptError(pub String);

fn fail(msg: impl Into<String>) -> ReceiptError {
    ReceiptError(msg.into())
}

/// Checks `receipt` against the audit log at `log` (audit.jsonl or its
/// directory): the whole chain, then each record the receipt cites, that
/// it is there with the right kind, tenant, subject, request, class and
/// store. Ok with a one-line summary.
pub fn check(receipt: &Value, log: &Path) -> Result<String, ReceiptError> {
    let r: Receipt =
        serde_json::from_value(receipt.clone()).map_err(|e| fail(format!("not a request receipt: {e}")))?;
    if r.receipt != RECEIPT_V1 {
        return Err(fail(format!("unknown receipt version {:?}", r.receipt)));
    }
    let report = verify(log, None).map_err(|f| fail(format!("audit log: {f}")))?;
    let dir = if log.is_dir() { log.to_path_buf() } else { log.parent().unwrap_or(Path::new(".")).to_path_buf() };
    let mut wanted: BTreeSet<u64> = r.entries.iter().filter_map(|e| e.audit_seq).collect();
    wanted.extend([r.received_seq, r.decided_seq]);
    wanted.extend(r.completed_seq);
    let found = crate::certificate::read_records(&dir, &wanted, report.records).map_err(|e| fail(e.0))?;
    let record = |seq: u64, kind: AuditKind| -> Result<&AuditRecord, ReceiptError> {
        let rec = found.get(&seq).ok_or_else(|| fail(format!("record {seq} is not in the log")))?;
        if rec.kind != kind.as_str()
            || rec.tenant.as_deref() != Some(r.tenant.as_str())
            || rec.data["subject"] != r.subject
        {
            return Err(fail(format!("record {seq} is not the {} of subject {:?}", kind.as_str(), r.subject)));
        }
        Ok(rec)
    };
    let proof_id = r.linked_to.as_deref().unwrap_or(&r.request);
    let received = record(r.received_seq, AuditKind::RequestReceived)?;
    if received.data["request"] != r.request || received.data["due"] != r.due {
        return Err(fail(format!("record {} does not receive request {:?} due {}", r.received_seq, r.request, r.due)));
    }
    let decided = record(r.decided_seq, AuditKind::RequestDecided)?;
    if decided.data["request"] != proof_id
        || decided.data["decision"] != r.decision
        || decided.data["ground"].as_str() != r.refusal_ground.as_deref()
    {
        return Err(fail(format!("record {} does not hold the decision {:?}", r.decided_seq, r.decision)));
    }
    if let Some(seq) = r.completed_seq {
        let done = record(seq, AuditKind::RequestCompleted)?;
        if done.data["request"] != proof_id || done.data["state"] != r.state {
            return Err(fail(format!("record {seq} does not complete request {proof_id:?} as {}", r.state)));
        }
        // What was kept is what the completion recorded, class and date.
        for e in r.entries.iter().filter(|e| e.outcome == "kept") {
            let listed = done.data["kept"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|k| k["class"] == e.class && k["until"].as_str() == e.kept_until.as_deref());
            if !listed {
                return Err(fail(format!("record {seq} does not keep class {} until {:?}", e.class, e.kept_until)));
            }
        }
    } else if r.state != RequestState::Refused.as_str() {
        return Err(fail("a completed request without its request.completed record"));
    }
    for e in &r.entries {
        let kind = match e.outcome.as_str() {
            "erased" => AuditKind::PersonalErased,
            "anonymized" => AuditKind::PersonalAnonymized,
            "kept" | "pending" if e.audit_seq.is_none() => continue,
            other => return Err(fail(format!("entry {}/{}: outcome {other:?} cites a record", e.class, e.store))),
        };
        let seq = e.audit_seq.ok_or_else(|| fail(format!("entry {}/{} has no audit_seq", e.class, e.store)))?;
        let rec = record(seq, kind)?;
        if rec.data["class"] != e.class || rec.data["store"] != e.store || Some(rec.at.as_str()) != e.at.as_deref() {
            return Err(fail(format!(
                "record {seq} does not prove {} of class {} in store {}",
                e.outcome, e.class, e.store
            )));
        }
    }
    Ok(format!(
        "ok: receipt of request {} holds: {}, {} entries, log of {} records verified",
        r.request,
        r.state,
        r.entries.len(),
        report.records
    ))
}
