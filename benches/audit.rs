//! Audit verify: records per second that `retentiond audit verify` checks
//! (issue 11: at least 1,000,000/s). Reports figures; asserts nothing.
//!
//!     cargo bench --bench audit
//!     BENCH_RECORDS=1000000 BENCH_ROUNDS=3 cargo bench --bench audit
//!     BENCH_VERIFY_BIN=/tmp/retentiond-before cargo bench --bench audit   # also time another build
//!     BENCH_KEEP=/tmp/audit-log cargo bench --bench audit                # keep the log (for a profile)
//!
//! The log is written through the library's own [`AuditLog`] (sealed,
//! chained, fsynced in batches of 1,000, rotated at the daemon's default
//! 64 MiB unless BENCH_SEGMENT_BYTES says otherwise), with the kinds and the
//! data shapes the engine writes over a resource's life: the events applied,
//! the buffer, the deletion scheduled and started, each copy deleted, the
//! resource deleted and purged. Then the release binary verifies it as a
//! child process, so the figure includes start-up and reading the files
//! (warm page cache: the log was just written).

mod common;

use chrono::{Duration, TimeZone, Utc};
use common::{env_usize, per_s, quick, thousands, Report};
use retentiond::audit::{AuditHead, AuditKind, AuditLog, AuditRecord};
use serde_json::{json, Value};
use std::path::Path;
use std::time::Instant;

/// The records of the `i`-th resource's life, in the order the engine
/// writes them (`kind`, resource-or-tenant-wide, data).
fn life(i: usize) -> Vec<(AuditKind, Value)> {
    let day =
        |d: i64| retentiond::time::fmt_rfc3339(Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap() + Duration::days(d));
    let event = |n: &str, t: &str, d: i64| json!({"event_id": format!("ev-{i}-{n}"), "type": t, "at": day(d)});
    let copy = |store: &str, class: &str| json!({"store": store, "copy": store, "class": class, "failures_before": 0});
    vec![
        (AuditKind::EventApplied, event("c", "resource.created", 0)),
        (AuditKind::EventApplied, event("e", "resource.expired", 30)),
        (AuditKind::BufferStarted, json!({"cause": "expiry", "reason": null, "buffer_started_at": day(30)})),
        (
            AuditKind::DeletionScheduled,
            json!({"cause": "expiry", "reason": null, "buffer": "15days", "buffer_started_at": day(30),
                   "delete_after": day(45), "policy_version": "sha256:5f0c2a91e7d4"}),
        ),
        (AuditKind::DeletionStarted, json!({"cause": "expiry", "delete_after": day(45), "why": "deadline"})),
        (AuditKind::CopyDeleted, copy("primary", "online")),
        (AuditKind::CopyDeleted, copy("cache", "cache")),
        (AuditKind::ResourceDeleted, json!({"cause": "expiry"})),
        (
            AuditKind::ResourcePurged,
            json!({"cause": "expiry", "reason": null, "product": "ecs", "copies": [
                {"store": "primary", "copy": "primary", "class": "online", "outcome": "deleted"},
                {"store": "cache", "copy": "cache", "class": "cache", "outcome": "deleted"}]}),
        ),
    ]
}

/// Writes `n` records into `dir` through [`AuditLog`]; returns the head and
/// the bytes written.
fn write_log(dir: &Path, n: usize, segment_bytes: u64) -> (AuditHead, u64) {
    let mut log = AuditLog::open(dir, Some(segment_bytes)).expect("open the audit log");
    let start = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    let mut batch = Vec::with_capacity(1_000);
    let mut prev = log.head().hash.clone();
    let mut written = 0usize;
    let mut resource = 0usize;
    while written < n {
        for (kind, data) in life(resource) {
            if written == n {
                break;
            }
            let seq = written as u64 + 1;
            let at = start + Duration::milliseconds(seq as i64 * 37);
            let (tenant, id) = (format!("t{}", resource % 1_000), format!("ecs-{resource:08}"));
            let r = AuditRecord::seal(seq, at, kind.as_str(), Some(&tenant), Some(&id), data, &prev);
            prev = r.hash.clone();
            batch.push(r);
            written += 1;
            if batch.len() == 1_000 {
                log.append(&batch).expect("append");
                batch.clear();
            }
        }
        resource += 1;
    }
    log.append(&batch).expect("append");
    let head = log.head().clone();
    let bytes = retentiond::audit::log_files(dir)
        .unwrap()
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum();
    (head, bytes)
}

fn main() {
    let n = env_usize("BENCH_RECORDS", if quick() { 20_000 } else { 1_000_000 });
    let rounds = env_usize("BENCH_ROUNDS", 3);
    let segment = env_usize("BENCH_SEGMENT_BYTES", 64 * 1024 * 1024) as u64;
    let mut bins = vec![("this build".to_string(), env!("CARGO_BIN_EXE_retentiond").to_string())];
    if let Ok(other) = std::env::var("BENCH_VERIFY_BIN") {
        bins.push((other.clone(), other));
    }

    let mut report = Report::new("audit verify", &["binary", "round", "records", "time", "records/s"]);
    let tmp = tempfile::tempdir().unwrap();
    let dir = match std::env::var("BENCH_KEEP") {
        Ok(keep) => {
            std::fs::create_dir_all(&keep).unwrap();
            std::path::PathBuf::from(keep)
        }
        Err(_) => tmp.path().to_path_buf(),
    };
    let started = Instant::now();
    let (head, bytes) = write_log(&dir, n, segment);
    let files = retentiond::audit::log_files(&dir).unwrap().len();
    report.note(format!(
        "log: {} records in {files} files, {} bytes ({} B a record), written in {:.1} s",
        thousands(n as u64),
        thousands(bytes),
        bytes / n.max(1) as u64,
        started.elapsed().as_secs_f64()
    ));
    let expected = format!("ok: {n} records, head {}", head.hash);
    for round in 1..=rounds {
        for (name, bin) in &bins {
            let started = Instant::now();
            let out = std::process::Command::new(bin).args(["audit", "verify"]).arg(&dir).output().unwrap();
            let took = started.elapsed();
            let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
            let cell = if out.status.success() && text == expected {
                per_s(n, took)
            } else {
                format!("failed: {text} {}", String::from_utf8_lossy(&out.stderr).trim())
            };
            report.row(vec![
                name.clone(),
                round.to_string(),
                thousands(n as u64),
                format!("{:.3} s", took.as_secs_f64()),
                cell,
            ]);
        }
    }
    report.finish();
}
