//! Every copy deleted, backups restricted then purged, and proof of each
//! deletion (general terms 4.1.5; privacy policy 5.3.3).

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::path::Path;

fn create(id: &str, product: &str) -> Value {
    json!({"event_id": format!("c-{id}"), "type": "resource.created", "at": T0, "tenant": "t1", "resource": id,
           "product": product, "billing": "prepaid", "term_end": "2026-02-01T00:00:00Z"})
}

/// The backup store's executor: logs each call; purge removes the snapshot file.
fn backup_config(tools: &Path) -> String {
    let snap = script(
        tools,
        "snapshots",
        &format!(
            "echo \"$1 $2 $3\" >> {log}\n[ \"$1\" = purge ] && rm -f {dir}/$3\nexit 0",
            log = tools.join("calls.log").display(),
            dir = tools.join("snaps").display()
        ),
    );
    std::fs::create_dir_all(tools.join("snaps")).unwrap();
    base_config(&format!(
        r#"
[stores.cache]
class = "cache"
executor = {{ kind = "fs", root = "cache", path = "{{resource}}" }}

[stores.snapshots]
class = "backup"
purge = "at_expiry"
executor = {{ kind = "command", argv = ["{}", "{{action}}", "{{resource}}", "{{copy}}"], timeout = "10s" }}

[products.db]
stores = ["primary", "cache", "snapshots"]
buffer = {{ expiry = "15d", arrears = "15d", termination = "15d" }}
"#,
        snap.display()
    ))
}

/// general terms 4.1.5 and privacy policy 5.3.3 end to end: online and cache
/// copies go at the deadline, the backup is restricted, the restore gate
/// refuses, the backup is purged when it expires, and the certificate holds
/// against the audit log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_copy_goes_and_the_backup_is_restricted_until_purged() {
    let tools = tempfile::tempdir().unwrap();
    let h = Harness::with_config(&backup_config(tools.path())).await;
    fs_root(&h.dir.path().join("cache"));
    std::fs::create_dir_all(h.dir.path().join("cache/r1")).unwrap();
    let online = h.make_data("t1", "r1");
    let snapshot = tools.path().join("snaps/snap-1");
    std::fs::write(&snapshot, b"backup of business data").unwrap();
    h.apply(create("r1", "db")).await;
    let mut other = create("other", "db");
    other["term_end"] = json!("2027-01-01T00:00:00Z");
    h.apply(other).await;
    let (status, v) = h
        .post_as(
            INGEST,
            "/v1/events",
            &json!({"event_id": "b1", "type": "backup.created", "at": T0, "tenant": "t1", "resource": "r1",
                    "store": "snapshots", "copy": "snap-1", "expires_at": "2026-04-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let (status, v) = h
        .post_as(
            INGEST,
            "/v1/events",
            &json!({"event_id": "b2", "type": "backup.created", "at": T0, "tenant": "t1", "resource": "r1",
                    "store": "primary", "copy": "x", "expires_at": "2026-04-01T00:00:00Z"}),
        )
        .await;
    assert_eq!((status, v["field"].as_str()), (StatusCode::BAD_REQUEST, Some("store")), "{v}");

    h.set_clock("2026-02-16T00:00:00Z").await;
    assert!(!online.exists());
    assert!(!h.dir.path().join("cache/r1").exists());
    assert!(snapshot.exists(), "the backup cannot go at once: restricted");
    let calls = std::fs::read_to_string(tools.path().join("calls.log")).unwrap();
    assert_eq!(calls, "restrict r1 snap-1\n");
    let r = h.resource("r1").await;
    assert_eq!(r["state"], "deleted");
    let snap = r["copies"].as_array().unwrap().iter().find(|c| c["copy"] == "snap-1").unwrap().clone();
    assert_eq!(snap["state"], "restricted");
    assert_eq!(h.audit_of("copy.restricted", "r1").len(), 1);

    let (_, gate) = h.get_as(AUDITOR, "/v1/restore-check?resource=r1").await;
    assert_eq!(gate["allowed"], false);
    assert!(gate["reason"].as_str().unwrap().contains("restricted"), "{gate}");
    let (_, gate) = h.get_as(AUDITOR, "/v1/restore-check?tenant=t1").await;
    assert_eq!(gate["allowed"], false);
    assert_eq!(gate["refused"][0]["resource"], "r1");
    let (_, gate) = h.get_as(AUDITOR, "/v1/restore-check?resource=nosuch").await;
    assert_eq!(gate["allowed"], false, "unknown: fail closed");
    let (status, _) = h.get_as(AUDITOR, "/v1/certificates/r1").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "no certificate before every copy is gone");

    h.set_clock("2026-03-31T23:59:59Z").await;
    assert!(snapshot.exists());
    h.advance("1s").await;
    assert!(!snapshot.exists(), "purged when it expired");
    let r = h.resource("r1").await;
    assert_eq!(r["state"], "purged");
    assert_eq!(h.audit_of("copy.purged", "r1").len(), 1);
    let (_, gate) = h.get_as(AUDITOR, "/v1/restore-check?resource=other").await;
    assert_eq!(gate["allowed"], true);

    let (status, cert) = h.get_as(AUDITOR, "/v1/certificates/r1").await;
    assert_eq!(status, StatusCode::OK, "{cert}");
    assert_eq!(cert["cause"], "expiry");
    assert_eq!(cert["delete_after"], "2026-02-16T00:00:00Z");
    let outcomes: Vec<(&str, &str, &str)> = cert["copies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["store"].as_str().unwrap(), c["class"].as_str().unwrap(), c["outcome"].as_str().unwrap()))
        .collect();
    assert_eq!(
        outcomes,
        vec![("primary", "online", "deleted"), ("cache", "cache", "deleted"), ("snapshots", "backup", "purged")]
    );
    let summary = retentiond::certificate::check(&cert, &h.state_dir()).unwrap();
    assert!(summary.starts_with("ok: certificate of r1 holds: 3 copies"), "{summary}");
    // An edited certificate does not hold.
    let mut forged = cert.clone();
    forged["delete_after"] = json!("2026-02-01T00:00:00Z");
    assert!(retentiond::certificate::check(&forged, &h.state_dir()).is_err());
    let mut forged = cert.clone();
    forged["copies"][2]["audit_seq"] = cert["copies"][0]["audit_seq"].clone();
    assert!(retentiond::certificate::check(&forged, &h.state_dir()).is_err());

    // The restore gate and the backup system: a backup of a purged resource is refused loudly.
    let res = h
        .events(json!({"event_id": "b3", "type": "backup.created", "at": "2026-04-01T00:00:00Z", "tenant": "t1",
                       "resource": "r1", "store": "snapshots", "copy": "snap-2", "expires_at": "2026-05-01T00:00:00Z"}))
        .await;
    assert_eq!(res[0]["status"], "rejected");
}

/// domain-rules §2: a restricted business backup is a bounded exception.
/// Past its store's `max_restricted` (counted from when its deletion was
/// due) an operator is alerted once, in the audit, the metrics and the log;
/// nothing is deleted early because of it (the purge still waits for expiry).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_restricted_past_its_limit_alerts_an_operator_once() {
    let tools = tempfile::tempdir().unwrap();
    let cfg = backup_config(tools.path())
        .replace("purge = \"at_expiry\"\n", "purge = \"at_expiry\"\nmax_restricted = \"10d\"\n");
    let h = Harness::with_config(&cfg).await;
    std::fs::create_dir_all(h.dir.path().join("cache/r1")).unwrap();
    h.make_data("t1", "r1");
    let snapshot = tools.path().join("snaps/snap-1");
    std::fs::write(&snapshot, b"backup of business data").unwrap();
    h.apply(create("r1", "db")).await;
    h.apply(json!({"event_id": "b1", "type": "backup.created", "at": T0, "tenant": "t1", "resource": "r1",
                   "store": "snapshots", "copy": "snap-1", "expires_at": "2026-04-01T00:00:00Z"}))
        .await;
    h.set_clock("2026-02-16T00:00:00Z").await;
    let restricted = h.audit_of("copy.restricted", "r1");
    assert_eq!(restricted[0]["data"]["restricted_until"], "2026-02-26T00:00:00Z");
    assert_eq!(restricted[0]["data"]["outlasts_limit"], true, "its expiry lies past the limit");
    h.set_clock("2026-02-25T23:59:59Z").await;
    assert!(h.audit_of("copy.restriction_overdue", "r1").is_empty());
    h.advance("1s").await;
    let overdue = h.audit_of("copy.restriction_overdue", "r1");
    assert_eq!(overdue.len(), 1);
    assert_eq!(overdue[0]["data"]["copy"], "snap-1");
    let (_, m) = h.get_text(AUDITOR, "/metrics").await;
    assert!(m.contains("retentiond_copies_restriction_overdue 1\n"), "{m}");
    h.set_clock("2026-03-31T23:59:59Z").await;
    assert_eq!(h.audit_of("copy.restriction_overdue", "r1").len(), 1, "once per copy");
    assert!(snapshot.exists(), "the alert deletes nothing");
    h.advance("1s").await;
    assert!(!snapshot.exists());
    let (_, m) = h.get_text(AUDITOR, "/metrics").await;
    assert!(m.contains("retentiond_copies_restriction_overdue 0\n"), "{m}");
}

/// Copies restricted by a build without `max_restricted` get their limit
/// at the next start (counted from the deletion start), so they are not
/// left out of the alert.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copies_restricted_before_the_limit_existed_get_it_at_start() {
    let tools = tempfile::tempdir().unwrap();
    let cfg = backup_config(tools.path())
        .replace("purge = \"at_expiry\"\n", "purge = \"at_expiry\"\nmax_restricted = \"10d\"\n");
    let mut h = Harness::with_config(&cfg).await;
    std::fs::create_dir_all(h.dir.path().join("cache/r1")).unwrap();
    h.make_data("t1", "r1");
    h.apply(create("r1", "db")).await;
    h.apply(json!({"event_id": "b1", "type": "backup.created", "at": T0, "tenant": "t1", "resource": "r1",
                   "store": "snapshots", "copy": "snap-1", "expires_at": "2026-04-01T00:00:00Z"}))
        .await;
    h.set_clock("2026-02-16T00:00:00Z").await;
    h.stop().await;
    {
        // As an older build left it: no limit on the restricted copy.
        use retentiond::store::Store;
        let store = retentiond::store::SledStore::open(&h.state_dir().join("db"), 1 << 20).unwrap();
        let mut r = store.resource("r1").unwrap().unwrap();
        let snap = r.copies.iter_mut().find(|c| c.copy == "snap-1").unwrap();
        assert_eq!(snap.state, retentiond::domain::lifecycle::CopyState::Restricted);
        snap.restricted_until = None;
        let mut w = retentiond::store::WriteSet::default();
        w.put_resource(r, Some(retentiond::time::parse_rfc3339("2026-04-01T00:00:00Z").unwrap()));
        store.commit(w).unwrap();
        store.flush().unwrap();
    }
    h.start_with(&cfg).await;
    h.set_clock("2026-02-26T00:00:00Z").await;
    assert_eq!(h.audit_of("copy.restriction_overdue", "r1").len(), 1);
}

/// Executor permits are per store: ten hung backup calls cannot hold up an
/// unrelated `fs` deletion (it used to wait for the whole command timeout).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_store_does_not_delay_the_others() {
    let tools = tempfile::tempdir().unwrap();
    let (gate, started) = (tools.path().join("gate"), tools.path().join("started"));
    let hang = script(
        tools.path(),
        "hang",
        &format!(
            "echo \"$2\" >> {started}\nwhile [ ! -e {gate} ]; do sleep 0.05; done\nexit 0",
            started = started.display(),
            gate = gate.display()
        ),
    );
    let cfg = base_config(&format!(
        r#"
[stores.snapshots]
class = "backup"
executor = {{ kind = "command", argv = ["{}", "{{resource}}", "{{copy}}"], timeout = "10m" }}

[products.db]
stores = ["primary", "snapshots"]
buffer = {{ expiry = "15d", arrears = "15d", termination = "15d" }}
"#,
        hang.display()
    ))
    .replace("state_dir = \"state\"", "state_dir = \"state\"\nexecutor_concurrency = 2");
    let h = Harness::with_config(&cfg).await;
    h.apply(create("r1", "db")).await;
    for i in 0..10 {
        h.apply(json!({"event_id": format!("b{i}"), "type": "backup.created", "at": T0, "tenant": "t1",
                       "resource": "r1", "store": "snapshots", "copy": format!("snap-{i}"),
                       "expires_at": "2027-01-01T00:00:00Z"}))
            .await;
    }
    let web = h.make_data("t1", "web");
    h.apply(created("c-web", "t1", "web", "2027-01-01T00:00:00Z")).await;
    h.apply(json!({"event_id": "x1", "type": "resource.released", "at": T0, "tenant": "t1", "resource": "r1"})).await;
    let calls = || std::fs::read_to_string(&started).unwrap_or_default().lines().count();
    let mut waited = 0;
    while calls() < 2 && waited < 400 {
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        waited += 1;
    }
    assert_eq!(calls(), 2, "two backup calls hang, holding the store's permits");
    h.apply(json!({"event_id": "x2", "type": "resource.released", "at": T0, "tenant": "t1", "resource": "web"})).await;
    let mut waited = 0;
    while web.exists() && waited < 400 {
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        waited += 1;
    }
    assert!(!web.exists(), "the fs deletion waited behind the hung backup store");
    assert_eq!(calls(), 2);
    std::fs::write(&gate, b"open").unwrap();
    h.advance("0s").await;
    assert_eq!(calls(), 10);
    assert_eq!(h.resource("r1").await["state"], "purged");
}

/// A config whose online store runs `tools/online`, failing as long as the
/// file `tools/fails` holds a positive count (it counts down).
fn flaky_config(tools: &Path, timeout: &str) -> String {
    let fails = tools.join("fails");
    let run = script(
        tools,
        "online",
        &format!(
            "n=$(cat {f} 2>/dev/null || echo 0)\nif [ \"$n\" -gt 0 ]; then echo $((n-1)) > {f}; echo boom >&2; exit 3; fi\n\
             [ -e {f}.hang ] && exec sleep 30\nrm -rf \"$1\"\nexit 0",
            f = fails.display()
        ),
    );
    base_config("")
        .replace("state_dir = \"state\"", "state_dir = \"state\"\nmax_attempts = 3")
        .replace(
            "executor = { kind = \"fs\", root = \"data\", path = \"{tenant}/{resource}\" }",
            &format!(
                "executor = {{ kind = \"command\", argv = [\"{}\", \"DATA/{{tenant}}/{{resource}}\"], timeout = \"{timeout}\" }}",
                run.display()
            ),
        )
}

async fn start_flaky(tools: &Path, timeout: &str) -> Harness {
    let cfg = flaky_config(tools, timeout);
    let mut h = Harness::with_config(&cfg.replace("DATA", "/nonexistent")).await;
    let data = h.dir.path().join("data");
    h.stop().await;
    h.start_with(&cfg.replace("DATA", &data.display().to_string())).await;
    h
}

/// Moves the clock to the copy's next attempt and returns the copy after it.
async fn next_attempt(h: &Harness, id: &str) -> Value {
    let r = h.resource(id).await;
    let at = r["copies"][0]["next_attempt_at"].as_str().expect("a retry is scheduled").to_string();
    h.set_clock(&at).await;
    h.resource(id).await["copies"][0].clone()
}

/// An executor that fails twice then succeeds: retried with backoff, one
/// completion record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_executor_is_retried_until_it_succeeds() {
    let tools = tempfile::tempdir().unwrap();
    std::fs::write(tools.path().join("fails"), "2").unwrap();
    let h = start_flaky(tools.path(), "10s").await;
    let data = h.make_data("t1", "r1");
    h.apply(created("e1", "t1", "r1", "2026-02-01T00:00:00Z")).await;
    h.set_clock("2026-02-16T00:00:00Z").await;
    let c = h.resource("r1").await["copies"][0].clone();
    assert_eq!((c["state"].as_str(), c["attempts"].as_u64()), (Some("deleting"), Some(1)));
    assert!(c["last_error"].as_str().unwrap().contains("boom"), "{c}");
    let c = next_attempt(&h, "r1").await;
    assert_eq!(c["attempts"], 2);
    let c = next_attempt(&h, "r1").await;
    assert_eq!(c["state"], "deleted");
    assert!(c["last_error"].is_null(), "a copy that succeeded keeps no error: {c}");
    assert!(!data.exists());
    assert_eq!(h.audit_of("copy.failed", "r1").len(), 2);
    assert_eq!(h.audit_of("copy.deleted", "r1").len(), 1);
}

/// An executor that always fails ends `stuck` (visible in the resource, the
/// forecast and the audit), and goes on when an operator retries it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_always_failing_executor_ends_stuck_until_an_operator_retries() {
    let tools = tempfile::tempdir().unwrap();
    std::fs::write(tools.path().join("fails"), "100").unwrap();
    let h = start_flaky(tools.path(), "10s").await;
    let data = h.make_data("t1", "r1");
    h.apply(created("e1", "t1", "r1", "2026-02-01T00:00:00Z")).await;
    h.set_clock("2026-02-16T00:00:00Z").await;
    next_attempt(&h, "r1").await;
    let c = next_attempt(&h, "r1").await;
    assert_eq!((c["stuck"].as_bool(), c["attempts"].as_u64()), (Some(true), Some(3)), "{c}");
    assert_eq!(h.audit_of("copy.stuck", "r1").len(), 1);
    h.advance("30d").await;
    assert_eq!(h.resource("r1").await["copies"][0]["attempts"], 3, "no more calls while stuck");
    let (_, v) = h.get_as(AUDITOR, "/v1/deletions?before=2027-01-01T00:00:00Z").await;
    assert_eq!(v["deletions"][0]["pending_copies"][0]["stuck"], true, "{v}");
    assert!(data.exists());

    std::fs::write(tools.path().join("fails"), "0").unwrap(); // the store is repaired
    let (status, v) = h.post_as(AUDITOR, "/v1/admin/retry", &json!({"resource": "r1"})).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{v}");
    let (status, v) = h.post_as(OPERATOR, "/v1/admin/retry", &json!({"resource": "r1"})).await;
    assert_eq!((status, v["retried"].as_u64()), (StatusCode::OK, Some(1)), "{v}");
    h.advance("0s").await;
    assert!(!data.exists());
    assert_eq!(h.resource("r1").await["state"], "purged");
}

/// An executor that hangs past its timeout is killed and counted as a failure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_executor_times_out_and_is_retried() {
    let tools = tempfile::tempdir().unwrap();
    std::fs::write(tools.path().join("fails.hang"), "").unwrap();
    let h = start_flaky(tools.path(), "300ms").await;
    h.make_data("t1", "r1");
    h.apply(created("e1", "t1", "r1", "2026-02-01T00:00:00Z")).await;
    h.set_clock("2026-02-16T00:00:00Z").await;
    let c = h.resource("r1").await["copies"][0].clone();
    assert_eq!(c["attempts"], 1);
    assert!(c["last_error"].as_str().unwrap().contains("300ms"), "{c}");
    assert!(c["next_attempt_at"].is_string());
}

/// `GET /v1/audit?after_seq=N`, and rotation of the audit file by size: the
/// chain runs on across segments.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_trail_is_served_and_rotated_by_size() {
    let cfg = base_config("").replace("state_dir = \"state\"", "state_dir = \"state\"\naudit_segment_bytes = 4096");
    let h = Harness::with_config(&cfg).await;
    for i in 0..40 {
        h.apply(created(&format!("e{i}"), "t1", &format!("r{i}"), "2026-02-01T00:00:00Z")).await;
    }
    let segments = std::fs::read_dir(h.state_dir())
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().starts_with("audit-"))
        .count();
    assert!(segments >= 2, "{segments} segments");
    assert_eq!(h.verify_audit(), 40);
    let (status, v) = h.get_as(AUDITOR, "/v1/audit?after_seq=3&limit=2").await;
    assert_eq!(status, StatusCode::OK);
    let seqs: Vec<u64> = v["records"].as_array().unwrap().iter().map(|r| r["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, vec![4, 5]);
    let (_, v) = h.get_as(AUDITOR, "/v1/audit?after_seq=38").await;
    assert_eq!(v["records"].as_array().unwrap().len(), 2);
    let (status, _) = h.get_as(INGEST, "/v1/audit?after_seq=0").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

/// `backup.deleted`: the backup system removed a copy itself; when it was the
/// last one, the resource is purged (and its certificate says so).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_removed_by_the_backup_system_completes_the_purge() {
    let tools = tempfile::tempdir().unwrap();
    let h = Harness::with_config(&backup_config(tools.path())).await;
    fs_root(&h.dir.path().join("cache"));
    h.apply(create("r1", "db")).await;
    h.apply(json!({"event_id": "b1", "type": "backup.created", "at": T0, "tenant": "t1", "resource": "r1",
                   "store": "snapshots", "copy": "snap-1", "expires_at": "2027-01-01T00:00:00Z"}))
        .await;
    h.set_clock("2026-02-16T00:00:00Z").await;
    assert_eq!(h.resource("r1").await["state"], "deleted", "the backup is restricted until 2027");
    let res = h
        .events(json!({"event_id": "b2", "type": "backup.deleted", "at": "2026-02-16T00:00:00Z", "tenant": "t1",
                       "resource": "r1", "store": "snapshots", "copy": "snap-9"}))
        .await;
    assert_eq!(res[0]["status"], "rejected", "an unknown copy");
    h.apply(json!({"event_id": "b3", "type": "backup.deleted", "at": "2026-02-16T00:00:00Z", "tenant": "t1",
                   "resource": "r1", "store": "snapshots", "copy": "snap-1"}))
        .await;
    h.advance("0s").await;
    let r = h.resource("r1").await;
    assert_eq!(r["state"], "purged");
    let (_, cert) = h.get_as(AUDITOR, "/v1/certificates/r1").await;
    assert_eq!(cert["copies"][2]["outcome"], "removed_by_backup_system");
    assert!(retentiond::certificate::check(&cert, &h.state_dir()).is_ok());
    let calls = std::fs::read_to_string(tools.path().join("calls.log")).unwrap();
    assert_eq!(calls, "restrict r1 snap-1\n", "no purge call for a copy already gone");
}

fn backup(id: &str, res: &str, copy: &str, at: &str, expires: &str) -> Value {
    json!({"event_id": id, "type": "backup.created", "at": at, "tenant": "t1", "resource": res,
           "store": "snapshots", "copy": copy, "expires_at": expires})
}

fn calls(tools: &Path) -> String {
    std::fs::read_to_string(tools.join("calls.log")).unwrap_or_default()
}

/// Review finding: `backup.deleted` naming the online copy used to write it
/// off, so the online data was never deleted and a certificate claimed it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_deleted_cannot_write_off_an_online_copy() {
    let tools = tempfile::tempdir().unwrap();
    let h = Harness::with_config(&backup_config(tools.path())).await;
    fs_root(&h.dir.path().join("cache"));
    std::fs::create_dir_all(h.dir.path().join("cache/r1")).unwrap();
    let online = h.make_data("t1", "r1");
    h.apply(create("r1", "db")).await;
    let (status, v) = h
        .post_as(
            INGEST,
            "/v1/events",
            &json!({"event_id": "bd", "type": "backup.deleted", "at": T0, "tenant": "t1", "resource": "r1",
                    "store": "primary", "copy": "primary"}),
        )
        .await;
    assert_eq!((status, v["field"].as_str()), (StatusCode::BAD_REQUEST, Some("store")), "{v}");
    h.set_clock("2026-02-16T00:00:00Z").await;
    assert!(!online.exists(), "deleted by its own executor");
    assert_eq!(h.resource("r1").await["copies"][0]["outcome"], "deleted");
}

/// Review finding: a clock jump stops the purge of a restricted backup at
/// its (apparent) expiry, as it stops deletion starts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clock_jump_does_not_purge_restricted_backups() {
    let tools = tempfile::tempdir().unwrap();
    let h = Harness::with_config(&backup_config(tools.path())).await;
    fs_root(&h.dir.path().join("cache"));
    std::fs::create_dir_all(h.dir.path().join("cache/r1")).unwrap();
    h.apply(create("r1", "db")).await;
    h.apply(backup("b1", "r1", "snap-1", T0, "2026-06-01T00:00:00Z")).await;
    h.set_clock("2026-02-16T00:00:00Z").await;
    h.jump_clock("2027-01-01T00:00:00Z").await;
    assert_eq!(calls(tools.path()), "restrict r1 snap-1\n", "no purge on a jumped clock");
    h.post_as(OPERATOR, "/v1/admin/approve", &json!({})).await;
    h.advance("0s").await;
    assert_eq!(calls(tools.path()), "restrict r1 snap-1\npurge r1 snap-1\n");
    assert_eq!(h.audit_of("copy.purge_started", "r1").len(), 1);
    assert_eq!(h.audit_of("copy.registered", "r1").len(), 1);
}

/// Review finding: a restricted backup that expired under a hold waits
/// safety.after_hold_release after the hold is lifted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_that_expired_under_a_hold_waits_after_its_release() {
    let tools = tempfile::tempdir().unwrap();
    let h = Harness::with_config(&backup_config(tools.path())).await;
    fs_root(&h.dir.path().join("cache"));
    std::fs::create_dir_all(h.dir.path().join("cache/r1")).unwrap();
    h.apply(create("r1", "db")).await;
    h.apply(backup("b1", "r1", "snap-1", T0, "2026-03-01T00:00:00Z")).await;
    h.set_clock("2026-02-16T00:00:00Z").await;
    let hold = json!({"event_id": "h1", "type": "hold.placed", "at": "2026-02-16T00:00:00Z", "tenant": "t1",
                      "resource": "r1", "hold_id": "H", "authority": "court", "reason": "x"});
    assert_eq!(h.post_as(OPERATOR, "/v1/events", &hold).await.1["results"][0]["status"], "applied");
    h.set_clock("2026-04-01T00:00:00Z").await;
    let release = json!({"event_id": "h2", "type": "hold.released", "at": "2026-04-01T00:00:00Z", "tenant": "t1",
                         "resource": "r1", "hold_id": "H"});
    assert_eq!(h.post_as(OPERATOR, "/v1/events", &release).await.1["results"][0]["status"], "applied");
    h.advance("23h 59m").await;
    assert_eq!(calls(tools.path()), "restrict r1 snap-1\n");
    h.advance("1m").await;
    assert_eq!(calls(tools.path()), "restrict r1 snap-1\npurge r1 snap-1\n");
}

/// Review findings: a certificate with edited claims, a shortened copy list,
/// or records planted outside the verified chain does not hold.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edited_certificates_and_planted_records_do_not_hold() {
    let tools = tempfile::tempdir().unwrap();
    let h = Harness::with_config(&backup_config(tools.path())).await;
    fs_root(&h.dir.path().join("cache"));
    std::fs::create_dir_all(h.dir.path().join("cache/r1")).unwrap();
    h.apply(create("r1", "db")).await;
    h.apply(backup("b1", "r1", "snap-1", T0, "2026-03-01T00:00:00Z")).await;
    h.set_clock("2026-03-02T00:00:00Z").await;
    let (_, cert) = h.get_as(AUDITOR, "/v1/certificates/r1").await;
    assert!(retentiond::certificate::check(&cert, &h.state_dir()).is_ok());
    let edits: Vec<(&str, Value)> = vec![
        ("cause", json!("release")),
        ("tenant", json!("someone-else")),
        ("product", json!("other")),
        ("purged_at", json!("2020-01-01T00:00:00Z")),
        ("copies", json!([])),
    ];
    for (field, value) in edits {
        let mut forged = cert.clone();
        forged[field] = value;
        assert!(retentiond::certificate::check(&forged, &h.state_dir()).is_err(), "edited {field} accepted");
    }
    let mut forged = cert.clone();
    forged["copies"][0]["outcome"] = json!("purged");
    assert!(retentiond::certificate::check(&forged, &h.state_dir()).is_err());
    let mut forged = cert.clone();
    forged["copies"][0]["at"] = json!("2020-01-01T00:00:00Z");
    assert!(retentiond::certificate::check(&forged, &h.state_dir()).is_err());

    // A record planted in a file verify does not read proves nothing.
    h.apply(created("e9", "t1", "r9", "2027-02-01T00:00:00Z")).await;
    let fake = json!({"seq": 900, "at": T0, "kind": "resource.purged", "tenant": "t1", "resource": "r9",
        "data": {"cause": "expiry", "copies": [], "policy_version": "x"}, "prev": "0".repeat(64), "hash": "f".repeat(64)});
    std::fs::write(h.state_dir().join("audit-extra.jsonl"), format!("{fake}\n")).unwrap();
    let planted = json!({"resource": "r9", "tenant": "t1", "purged_seq": 900, "chain_hash": "f".repeat(64),
        "cause": "expiry", "policy_version": "x", "copies": []});
    assert!(retentiond::certificate::check(&planted, &h.state_dir()).is_err());
}

/// Review finding: the tenant form of the restore gate refuses a tenant it
/// knows nothing about, as the resource form does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_restore_gate_refuses_an_unknown_tenant() {
    let h = Harness::start().await;
    let (_, gate) = h.get_as(AUDITOR, "/v1/restore-check?tenant=nosuch").await;
    assert_eq!(gate["allowed"], false, "{gate}");
    h.apply(created("e1", "t1", "r1", "2027-01-01T00:00:00Z")).await;
    let (_, gate) = h.get_as(AUDITOR, "/v1/restore-check?tenant=t1").await;
    assert_eq!(gate["allowed"], true, "{gate}");
}

/// Review finding: a hold placed while a deletion call waits for its
/// executor permit stops that call (the running one cannot be stopped).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hold_stops_a_call_queued_for_its_permit() {
    let tools = tempfile::tempdir().unwrap();
    let gate = tools.path().join("gate");
    let run = script(
        tools.path(),
        "online",
        &format!(
            "touch {}\nwhile [ ! -e {} ]; do sleep 0.01; done\nrm -rf \"$1\"\nexit 0",
            tools.path().join("running").display(),
            gate.display()
        ),
    );
    let data = tools.path().join("data");
    let cfg =
        base_config("").replace("state_dir = \"state\"", "state_dir = \"state\"\nexecutor_concurrency = 1").replace(
            "executor = { kind = \"fs\", root = \"data\", path = \"{tenant}/{resource}\" }",
            &format!(
            "executor = {{ kind = \"command\", argv = [\"{}\", \"{}/{{tenant}}/{{resource}}\"], timeout = \"1m\" }}",
            run.display(),
            data.display()
        ),
        );
    let h = Harness::with_config(&cfg).await;
    let mut releases = Vec::new();
    for r in ["r0", "r1"] {
        std::fs::create_dir_all(data.join("t1").join(r)).unwrap();
        h.apply(created(&format!("e-{r}"), "t1", r, "2027-01-01T00:00:00Z")).await;
        releases.push(
            json!({"event_id": format!("x-{r}"), "type": "resource.released", "at": T0, "tenant": "t1", "resource": r}),
        );
    }
    h.events(json!(releases)).await; // one call runs (waiting on the gate), one queues
                                     // On a loaded machine the first call may not have started yet: wait
                                     // until it runs, or the hold would (rightly) stop it too.
    let mut waited = 0;
    while !tools.path().join("running").exists() && waited < 400 {
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        waited += 1;
    }
    let holds: Vec<Value> = ["r0", "r1"]
        .iter()
        .map(|r| {
            json!({"event_id": format!("h-{r}"), "type": "hold.placed", "at": T0, "tenant": "t1",
                        "resource": r, "hold_id": "H", "authority": "court", "reason": "x"})
        })
        .collect();
    let (status, _) = h.post_as(OPERATOR, "/v1/events", &json!(holds)).await;
    assert_eq!(status, StatusCode::OK);
    std::fs::write(&gate, b"open").unwrap();
    h.advance("0s").await;
    let gone = ["r0", "r1"].iter().filter(|r| !data.join("t1").join(r).exists()).count();
    assert_eq!(gone, 1, "only the call already running went through");
}
