//! Tests that run the real `retentiond` binary.

mod common;

use common::*;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_retentiond"))
}

fn shipped_config() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("config/retentiond.toml")
}

#[test]
fn check_config_accepts_the_shipped_config_and_prints_its_policies() {
    let out = bin().args(["check-config", "--config"]).arg(shipped_config()).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("product ecs (policy "), "{stdout}");
    assert!(stdout.contains("expiry=15days"), "{stdout}");
    assert!(stdout.contains("(marker .retentiond-root)"), "{stdout}");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "", "no warnings for the shipped config");
}

/// `marker = ""` is accepted (exit 0) with a warning on stderr that names
/// the store and its position; stdout still lists the policies.
#[test]
fn check_config_warns_when_the_fs_marker_check_is_off() {
    let dir = tempfile::tempdir().unwrap();
    let (path, line, col) = broken_copy(
        dir.path(),
        "\"../var/tenant-data\", path = \"{tenant}/{resource}\", marker = \".retentiond-root\"",
        "\"../var/tenant-data\", path = \"{tenant}/{resource}\", marker = \"\"",
    );
    let out = bin().args(["check-config", "--config"]).arg(&path).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("(no marker check)"));
    // The position is the executor's (the value the marker belongs to).
    let text = std::fs::read_to_string(&path).unwrap();
    let exec_line = text.lines().nth(line - 1).unwrap();
    let exec_col = exec_line.find("{ kind").unwrap() + 1;
    assert!(col > exec_col);
    let prefix = format!("warning: {}:{line}:{exec_col}: stores.primary.executor: marker = \"\"", path.display());
    assert!(stderr.starts_with(&prefix), "expected {prefix:?}, got {stderr:?}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}

/// Writes a copy of the shipped config with `from` replaced by `to`, and
/// returns the 1-based line and column where `to` stands.
fn broken_copy(dir: &Path, from: &str, to: &str) -> (PathBuf, usize, usize) {
    let text = std::fs::read_to_string(shipped_config()).unwrap();
    assert!(text.contains(from), "shipped config no longer contains {from:?}");
    let broken = text.replacen(from, to, 1);
    let offset = broken.find(to).unwrap();
    let line = broken[..offset].matches('\n').count() + 1;
    let col = offset - broken[..offset].rfind('\n').map(|i| i + 1).unwrap_or(0) + 1;
    let path = dir.join("broken.toml");
    std::fs::write(&path, broken).unwrap();
    std::fs::copy(shipped_config().with_file_name("demo-tokens.toml"), dir.join("demo-tokens.toml")).unwrap();
    (path, line, col)
}

#[test]
fn check_config_rejects_broken_copies_with_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("arrears_grace = \"0s\"", "arrears_grase = \"0s\"", "arrears_grase", "arrears_grase"),
        ("stores = [\"primary\"]", "stores = [\"primary\", \"nosuch\"]", "\"nosuch\"", "unknown store"),
        ("expiry = \"15d\"", "expiry = \"15 fortnights\"", "\"15 fortnights\"", "invalid duration"),
        ("expiry = \"15d\"", "expiry = \"1h\"", "\"1h\"", "min_buffer"),
        ("max_fraction = 0.1", "max_fraction = 1.5", "1.5", "max_fraction"),
        ("min_notice = \"30d\"", "min_notice = \"5d\"", "\"5d\"", "shorter than products.ecs.notices"),
        ("min_notice = \"30d\"", "min_notice = \"1h\"", "\"1h\"", "at least 1 day"),
        ("reconcile = \"0 */10 * * * *\"", "reconcile = \"*/10 * * * *\"", "\"*/10 * * * *\"", "schedule.reconcile"),
        (
            "{ kind = \"fs\", root = \"../var/tenant-data\", path = \"{tenant}/{resource}\", marker = \".retentiond-root\" }",
            "{ kind = \"fs\", root = \"../var/tenant-data\", path = \"{tenant}/{resource}\", marker = \"../up\" }",
            "{ kind",
            "marker \"../up\" must be a plain file name",
        ),
        (
            "# [notifier]\n# kind = \"command\"",
            "[notifier]\nkind = \"carrier-pigeon\"",
            "\"carrier-pigeon\"",
            "unknown variant",
        ),
    ];
    for (from, to, at, needle) in cases {
        let (path, _, _) = broken_copy(dir.path(), from, to);
        let text = std::fs::read_to_string(&path).unwrap();
        let offset = text.find(to).unwrap() + to.find(at).unwrap();
        let line = text[..offset].matches('\n').count() + 1;
        let col = offset - text[..offset].rfind('\n').map(|i| i + 1).unwrap_or(0) + 1;
        let out = bin().args(["check-config", "--config"]).arg(&path).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{to}: {stderr}");
        let prefix = format!("{}:{line}:{col}: ", path.display());
        assert!(stderr.starts_with(&prefix), "{to}: expected {prefix:?}, got {stderr:?}");
        assert!(stderr.contains(needle), "{to}: {stderr}");
    }
}

/// Starts `retentiond serve` and waits until /healthz answers.
async fn serve(config: &Path, port: u16) -> Served {
    let child = bin()
        .args(["serve", "--config"])
        .arg(config)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    Served::wait_healthy(child, format!("http://127.0.0.1:{port}")).await
}

/// engineering-notes habit 3: a 200 means the event survives kill -9 right after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acknowledged_event_survives_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    fs_root(&dir.path().join("data"));
    write_tokens(dir.path());
    let port = free_port();
    let config = dir.path().join("retentiond.toml");
    std::fs::write(&config, base_config("").replace("127.0.0.1:0", &format!("127.0.0.1:{port}"))).unwrap();
    let client = reqwest::Client::new();

    let mut d = serve(&config, port).await;
    let body =
        json!([created("e1", "t1", "r1", "2026-02-01T00:00:00Z"), created("e2", "t1", "r2", "2026-03-01T00:00:00Z")]);
    let resp = client.post(format!("{}/v1/events", d.base)).bearer_auth(INGEST).json(&body).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    d.child.kill().unwrap(); // SIGKILL, right after the answer
    d.child.wait().unwrap();

    let d = serve(&config, port).await;
    for id in ["r1", "r2"] {
        let resp = client.get(format!("{}/v1/resources/{id}", d.base)).bearer_auth(AUDITOR).send().await.unwrap();
        assert_eq!(resp.status(), 200, "{id} lost after SIGKILL");
        let v: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(v["state"], "active");
    }
    // The repeat of an acknowledged event is still known as a duplicate.
    let resp = client.post(format!("{}/v1/events", d.base)).bearer_auth(INGEST).json(&body).send().await.unwrap();
    let v: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(v["results"][0]["status"], "duplicate");
    drop(d);

    let out = bin().args(["audit", "verify"]).arg(dir.path().join("state/audit.jsonl")).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout} {}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.starts_with("ok: 2 records, head "), "{stdout}");
}

#[test]
fn audit_verify_names_the_first_bad_record() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.jsonl");
    let mut prev = retentiond::audit::GENESIS_HASH.to_string();
    let mut text = String::new();
    for seq in 1..=3 {
        let rec = retentiond::audit::AuditRecord::seal(
            seq,
            chrono::Utc::now(),
            "event.applied",
            Some("t1"),
            Some("r1"),
            json!({"event_id": format!("e{seq}")}),
            &prev,
        );
        prev = rec.hash.clone();
        text.push_str(&rec.to_line());
    }
    std::fs::write(&log, text.replace("\"e2\"", "\"eX\"")).unwrap();
    let out = bin().args(["audit", "verify"]).arg(&log).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(":2:") && stderr.contains("seq 2"), "{stderr}");
}

/// domain-rules §1 through the HTTP API of the real binary: a termination,
/// tenant arrears and a court hold, with the clock moved by the admin.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agreements_work_on_the_real_binary() {
    let dir = tempfile::tempdir().unwrap();
    write_tokens(dir.path());
    let port = free_port();
    let config = dir.path().join("retentiond.toml");
    std::fs::write(&config, base_config("").replace("127.0.0.1:0", &format!("127.0.0.1:{port}"))).unwrap();
    let client = reqwest::Client::new();
    let d = serve(&config, port).await;
    fs_root(&dir.path().join("data"));
    let data = |r: &str| dir.path().join("data/t1").join(r);
    for r in ["term", "arr", "exp", "rel"] {
        std::fs::create_dir_all(data(r)).unwrap();
    }
    let post = |token: &'static str, path: &'static str, body: serde_json::Value| {
        let (client, url) = (client.clone(), format!("{}{path}", d.base));
        async move {
            let resp = client.post(url).bearer_auth(token).json(&body).send().await.unwrap();
            assert_eq!(resp.status(), 200);
            resp.json::<serde_json::Value>().await.unwrap()
        }
    };
    let ev = |id: &str, kind: &str, resource: Option<&str>, extra: serde_json::Value| {
        let mut v = json!({"event_id": id, "type": kind, "at": T0, "tenant": "t1"});
        if let Some(r) = resource {
            v["resource"] = json!(r);
        }
        v.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        v
    };
    // "term" is prepaid, so the tenant's arrears (postpaid by default) leave it alone.
    let created = |r: &str, billing: &str| {
        let mut extra = json!({"product": "ecs", "billing": billing});
        if billing == "prepaid" {
            extra["term_end"] = json!("2027-01-01T00:00:00Z");
        }
        ev(&format!("c-{r}"), "resource.created", Some(r), extra)
    };
    let v = post(
        INGEST,
        "/v1/events",
        json!([
            created("term", "prepaid"),
            created("arr", "postpaid"),
            ev(
                "c-exp",
                "resource.created",
                Some("exp"),
                json!({"product": "ecs", "billing": "prepaid",
                                                                 "term_end": "2026-01-02T00:00:00Z"})
            ),
            created("rel", "prepaid"),
            ev("r", "resource.released", Some("rel"), json!({})),
            ev("t", "resource.terminated", Some("term"), json!({"reason": "attack"})),
            ev("a", "arrears.started", None, json!({"amount": "99.90", "currency": "EUR"}))
        ]),
    )
    .await;
    assert!(v["results"].as_array().unwrap().iter().all(|r| r["status"] == "applied"), "{v}");
    post(
        OPERATOR,
        "/v1/events",
        ev("h", "hold.placed", Some("arr"), json!({"hold_id": "court-1", "authority": "Court", "reason": "case"})),
    )
    .await;

    let resp = client
        .get(format!("{}/v1/deletions?before=2026-02-01T00:00:00Z", d.base))
        .bearer_auth(AUDITOR)
        .send()
        .await
        .unwrap();
    let forecast: serde_json::Value = resp.json().await.unwrap();
    let causes: Vec<(&str, &str)> = forecast["deletions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| (x["resource"].as_str().unwrap(), x["cause"].as_str().unwrap()))
        .filter(|(r, _)| *r != "rel") // may still be listed as under way
        .collect();
    assert_eq!(causes, vec![("arr", "arrears"), ("term", "termination"), ("exp", "expiry")], "by deadline, then id");

    post(ADMIN, "/v1/admin/clock", json!({"advance": "0s"})).await;
    assert!(!data("rel").exists(), "the tenant's release: deleted at once");
    assert!(data("exp").exists());
    post(ADMIN, "/v1/admin/clock", json!({"advance": "16d"})).await;
    assert!(!data("exp").exists(), "term end Jan 2 + 15 days");
    assert!(!data("term").exists(), "attack termination: 15-day buffer ran out");
    assert!(data("arr").exists(), "held by the court");
    post(OPERATOR, "/v1/events", ev("hr", "hold.released", Some("arr"), json!({"hold_id": "court-1"}))).await;
    // The release is dated Jan 1, but the hold is lifted now (Jan 17), after
    // the deadline passed under it: the reaction window counts from now.
    post(ADMIN, "/v1/admin/clock", json!({"advance": "23h 59m"})).await;
    assert!(data("arr").exists(), "after_hold_release: a day to react");
    post(ADMIN, "/v1/admin/clock", json!({"advance": "1m"})).await;
    assert!(!data("arr").exists());
}

/// Crash between an executor's success and the record of it: the executor
/// deletes the data and kills the daemon (SIGKILL) before the daemon can
/// record it. After restart the copy is done once, with one completion record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_after_the_executor_succeeded_gives_one_completion_record() {
    let dir = tempfile::tempdir().unwrap();
    write_tokens(dir.path());
    let data = dir.path().join("data/t1/r1");
    std::fs::create_dir_all(&data).unwrap();
    let mark = dir.path().join("crashed-once");
    let body = format!(
        "rm -rf \"$1\"\nif [ ! -e {m} ]; then touch {m}; kill -9 $PPID; sleep 5; fi\nexit 0",
        m = mark.display()
    );
    let script = script(dir.path(), "rm-then-crash", &body);
    let port = free_port();
    let config = dir.path().join("retentiond.toml");
    let text = base_config("").replace("127.0.0.1:0", &format!("127.0.0.1:{port}")).replace(
        "executor = { kind = \"fs\", root = \"data\", path = \"{tenant}/{resource}\" }",
        &format!(
            "executor = {{ kind = \"command\", argv = [\"{}\", \"{}/{{tenant}}/{{resource}}\"], timeout = \"10s\" }}",
            script.display(),
            dir.path().join("data").display()
        ),
    );
    std::fs::write(&config, text).unwrap();
    let client = reqwest::Client::new();

    let mut d = serve(&config, port).await;
    let body = json!([created("e1", "t1", "r1", "2026-02-01T00:00:00Z"),
                      {"event_id": "e2", "type": "resource.released", "at": T0, "tenant": "t1", "resource": "r1"}]);
    let resp = client.post(format!("{}/v1/events", d.base)).bearer_auth(INGEST).json(&body).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let status = d.child.wait().unwrap(); // the executor killed it
    assert!(!status.success());
    assert!(!data.exists() && mark.exists(), "the executor ran and deleted the data");

    let d = serve(&config, port).await;
    let resp = client
        .post(format!("{}/v1/admin/clock", d.base))
        .bearer_auth(ADMIN)
        .json(&json!({"advance": "0s"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let r: serde_json::Value = client
        .get(format!("{}/v1/resources/r1", d.base))
        .bearer_auth(AUDITOR)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["state"], "purged", "{r}");
    drop(d);
    let log = std::fs::read_to_string(dir.path().join("state/audit.jsonl")).unwrap();
    let completions = log.lines().filter(|l| l.contains("\"kind\":\"copy.deleted\"")).count();
    assert_eq!(completions, 1, "{log}");
    let out = bin().args(["audit", "verify"]).arg(dir.path().join("state")).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// Whole records cut off the end of the log: the daemon refuses to start
/// (its database knows the head), and `audit verify --head` names it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_cut_short_is_caught() {
    let mut h = Harness::start().await;
    for i in 0..3 {
        h.apply(created(&format!("e{i}"), "t1", &format!("r{i}"), "2026-02-01T00:00:00Z")).await;
    }
    let (_, v) = h.get_as(AUDITOR, "/v1/audit?after_seq=2").await;
    let last = &v["records"][0];
    let head = format!("{}:{}", last["seq"], last["hash"].as_str().unwrap());
    h.stop().await;
    let path = h.state_dir().join("audit.jsonl");
    let text = std::fs::read_to_string(&path).unwrap();
    let cut: String = text.lines().take(2).map(|l| format!("{l}\n")).collect();
    std::fs::write(&path, cut).unwrap();

    let out = bin().args(["audit", "verify"]).arg(&path).output().unwrap();
    assert!(out.status.success(), "the chain alone cannot see a clean cut");
    let out = bin().args(["audit", "verify", "--head", &head]).arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stdout));
    let config = retentiond::config::load(&h.config_path()).unwrap();
    let err = retentiond::daemon::Daemon::start(config).await.err().expect("the daemon refuses to start");
    assert!(err.to_string().contains("neither in the file nor in the outbox"), "{err}");
}
