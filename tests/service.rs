//! The real binary as systemd runs it (issue 5): readiness, watchdog,
//! reload and stop notifications on a fake notify socket, SIGHUP with a
//! good and a broken config, and SIGTERM while an executor call runs.

mod common;

use common::*;
use serde_json::{json, Value};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A fake systemd notify socket: collects what the daemon sends.
struct NotifySocket {
    sock: UnixDatagram,
    path: PathBuf,
}

impl NotifySocket {
    fn bind(dir: &Path) -> NotifySocket {
        let path = dir.join("notify.sock");
        let sock = UnixDatagram::bind(&path).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
        NotifySocket { sock, path }
    }

    /// Reads datagrams until one contains `needle`, or fails after 30 s.
    /// Returns every message read, the matching one last.
    fn wait_for(&self, needle: &str) -> Vec<String> {
        self.wait_until(needle, |l| l == needle)
    }

    /// Reads datagrams until one has a `STATUS=` line for which `pred`
    /// holds, or fails after 30 s; returns that status.
    fn wait_for_status(&self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let seen = self.wait_until(what, |l| l.strip_prefix("STATUS=").is_some_and(&pred));
        let last = seen.last().unwrap();
        last.lines().find_map(|l| l.strip_prefix("STATUS=")).unwrap().to_string()
    }

    fn wait_until(&self, what: &str, hit: impl Fn(&str) -> bool) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        while Instant::now() < deadline {
            if let Ok(n) = self.sock.recv(&mut buf) {
                let msg = String::from_utf8_lossy(&buf[..n]).to_string();
                let found = msg.lines().any(&hit);
                seen.push(msg);
                if found {
                    return seen;
                }
            }
        }
        panic!("no {what} from the daemon; got {seen:?}");
    }
}

/// A config on `port`, with a `slow` store whose command executor takes
/// `call_secs` and a product `slowp` using it; `drain` is the drain timeout.
fn config(dir: &Path, port: u16, call_secs: u32, drain: &str) -> String {
    let body = format!(
        "touch {d}/started\nsleep {call_secs}\nrm -rf {d}/data/\"$1\"/\"$2\"\ntouch {d}/finished",
        d = dir.display()
    );
    let script = script(dir, "slow-delete.sh", &body);
    let extra = format!(
        r#"
[stores.slow]
class = "cache"
executor = {{ kind = "command", argv = ["{}", "{{tenant}}", "{{resource}}"], timeout = "1m" }}

[products.slowp]
stores = ["primary", "slow"]
buffer = {{ expiry = "1d", arrears = "1d", termination = "1d" }}
"#,
        script.display()
    );
    base_config(&extra)
        .replace("127.0.0.1:0", &format!("127.0.0.1:{port}"))
        .replace("state_dir = \"state\"", &format!("state_dir = \"state\"\ndrain_timeout = \"{drain}\""))
}

/// `retentiond ARGS...`, the binary under test.
fn retentiond<I, S>(args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_retentiond"));
    cmd.args(args);
    cmd
}

/// `retentiond serve` on `dir`'s config, logging at `rust_log`.
fn serve_command(dir: &Path, rust_log: &str) -> Command {
    let mut cmd = retentiond(["serve", "--config"]);
    cmd.arg(dir.join("retentiond.toml")).env("RUST_LOG", rust_log);
    cmd
}

/// `retentiond reload --pid PID`, as the unit's ExecReload= runs it.
fn reload(pid: impl ToString) -> std::process::Output {
    retentiond(["reload", "--pid", &pid.to_string()]).output().unwrap()
}

async fn serve(dir: &Path, port: u16, notify: Option<&NotifySocket>, watchdog_usec: Option<u64>) -> Served {
    let mut cmd = serve_command(dir, "warn");
    cmd.stdout(Stdio::null()).stderr(Stdio::inherit());
    if let Some(n) = notify {
        cmd.env("NOTIFY_SOCKET", &n.path);
    }
    if let Some(usec) = watchdog_usec {
        cmd.env("WATCHDOG_USEC", usec.to_string());
    }
    let child = cmd.spawn().unwrap();
    Served::wait_healthy(child, format!("http://127.0.0.1:{port}")).await
}

/// `setup(0, "30s")` served with a notify socket, READY=1 received.
async fn serve_ready() -> (tempfile::TempDir, NotifySocket, Served) {
    let (dir, port) = setup(0, "30s");
    let notify = NotifySocket::bind(dir.path());
    let d = serve(dir.path(), port, Some(&notify), None).await;
    notify.wait_for("READY=1");
    (dir, notify, d)
}

fn setup(call_secs: u32, drain: &str) -> (tempfile::TempDir, u16) {
    let dir = tempfile::tempdir().unwrap();
    fs_root(&dir.path().join("data"));
    write_tokens(dir.path());
    let port = free_port();
    std::fs::write(dir.path().join("retentiond.toml"), config(dir.path(), port, call_secs, drain)).unwrap();
    (dir, port)
}

async fn get(base: &str, token: &str, path: &str) -> (u16, Value) {
    let r = reqwest::Client::new().get(format!("{base}{path}")).bearer_auth(token).send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

async fn post(base: &str, token: &str, path: &str, body: Value) -> (u16, Value) {
    let r = reqwest::Client::new().post(format!("{base}{path}")).bearer_auth(token).json(&body).send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

fn audit_kinds(dir: &Path) -> Vec<Value> {
    read_jsonl(&dir.join("state/audit.jsonl"))
}

/// The audit records of `kind`, oldest first.
fn audit_of(dir: &Path, kind: &str) -> Vec<Value> {
    audit_kinds(dir).into_iter().filter(|r| r["kind"] == kind).collect()
}

/// The version of product `ecs`'s policy in force, as `/readyz` says.
async fn ecs_policy(base: &str) -> String {
    let (_, ready) = get(base, AUDITOR, "/readyz").await;
    ready["policies"]["ecs"].as_str().unwrap().to_string()
}

/// A good change to the config: the expiry buffer of ecs grows to 20 days.
fn lengthen_ecs_expiry(dir: &Path) {
    let path = dir.join("retentiond.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replacen("expiry = \"15d\"", "expiry = \"20d\"", 1)).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifies_ready_watchdog_reloading_and_stopping() {
    let (dir, port) = setup(0, "30s");
    let notify = NotifySocket::bind(dir.path());
    // A 400 ms watchdog: pings every 200 ms while the loop is healthy.
    let mut d = serve(dir.path(), port, Some(&notify), Some(400_000)).await;

    let first = notify.wait_for("READY=1");
    assert!(first.iter().all(|m| !m.contains("STOPPING")), "{first:?}");
    // READY came after the store opened and catch-up ran: the API answers.
    let (status, _) = get(&d.base, AUDITOR, "/readyz").await;
    assert_eq!(status, 200);
    notify.wait_for("WATCHDOG=1");
    notify.wait_for("WATCHDOG=1");

    d.signal("HUP");
    let reload = notify.wait_for("RELOADING=1");
    let msg = reload.last().unwrap();
    let usec: u64 = msg
        .lines()
        .find_map(|l| l.strip_prefix("MONOTONIC_USEC="))
        .unwrap_or_else(|| panic!("RELOADING=1 without MONOTONIC_USEC: {msg:?}"))
        .parse()
        .unwrap();
    assert!(usec > 0);
    notify.wait_for("READY=1");

    d.signal("TERM");
    notify.wait_for("STOPPING=1");
    assert_eq!(d.exit_code(Duration::from_secs(30)), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_applies_a_good_config_and_keeps_the_old_one_on_error() {
    let (dir, notify, d) = serve_ready().await;
    let v1 = ecs_policy(&d.base).await;

    lengthen_ecs_expiry(dir.path());
    d.signal("HUP");
    notify.wait_for("RELOADING=1");
    notify.wait_for("READY=1");
    let v2 = ecs_policy(&d.base).await;
    assert_ne!(v1, v2, "the new policy is in force");
    let reloaded = audit_of(dir.path(), "config.reloaded");
    assert_eq!(reloaded.len(), 1);
    assert_eq!(reloaded[0]["data"]["changed"], json!(["ecs"]));
    assert_eq!(reloaded[0]["data"]["products"]["ecs"], v2.as_str());

    // A broken change: refused with file:line:col, audited, old config stays.
    let path = dir.path().join("retentiond.toml");
    let good = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, good.replacen("expiry = \"20d\"", "expiry = \"1h\"", 1)).unwrap();
    d.signal("HUP");
    notify.wait_for("RELOADING=1");
    let ready_msg = notify.wait_for("READY=1");
    assert!(ready_msg.last().unwrap().contains("reload refused"), "{ready_msg:?}");
    let failed = audit_of(dir.path(), "config.reload_failed");
    assert_eq!(failed.len(), 1);
    let error = failed[0]["data"]["error"].as_str().unwrap();
    assert!(error.contains("retentiond.toml:") && error.contains("min_buffer"), "{error}");
    let (status, ready) = get(&d.base, AUDITOR, "/readyz").await;
    assert_eq!((status, ready["policies"]["ecs"].as_str()), (200, Some(v2.as_str())), "old config still in force");

    // A change that needs a restart is refused the same way.
    std::fs::write(&path, good.replace("state_dir = \"state\"", "state_dir = \"elsewhere\"")).unwrap();
    d.signal("HUP");
    notify.wait_for("RELOADING=1");
    notify.wait_for("READY=1");
    let failed = audit_of(dir.path(), "config.reload_failed");
    assert!(failed[1]["data"]["error"].as_str().unwrap().contains("daemon.state_dir cannot change on reload"));
    assert!(!dir.path().join("elsewhere").exists());
}

/// `retentiond reload --pid PID`, the unit's ExecReload= (no kill(1)
/// needed on the host), makes the daemon reload like SIGHUP: RELOADING=1,
/// then READY=1 with the new policy in force. A pid it cannot signal is an
/// error, and no pid at all is bad usage.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reload_subcommand_makes_the_daemon_reload() {
    let (dir, notify, d) = serve_ready().await;
    let v1 = ecs_policy(&d.base).await;
    lengthen_ecs_expiry(dir.path());

    let out = reload(d.child.id());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    notify.wait_for("RELOADING=1");
    notify.wait_for("READY=1");
    let (_, ready) = get(&d.base, AUDITOR, "/readyz").await;
    assert_ne!(ready["policies"]["ecs"].as_str().unwrap(), v1, "the new policy is in force");

    // A process that is gone (reaped) cannot be signalled: exit 1, one line.
    let mut gone = Command::new("true").spawn().unwrap();
    let gone_pid = gone.id().to_string();
    gone.wait().unwrap();
    let out = reload(&gone_pid);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.starts_with(&format!("reload: cannot send SIGHUP to process {gone_pid}: ")), "{stderr}");
    for bad in [&["reload"][..], &["reload", "--pid", "0"], &["reload", "--pid", "-1"]] {
        let out = retentiond(bad).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{bad:?}");
    }
}

/// The status line (`systemctl status`) says why nothing is deleted, and
/// follows changes: a dry-run config, a pause and its resume, a clock
/// anomaly and its approval, a reload that ends dry run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_line_says_dry_run_paused_and_clock_anomaly_as_they_change() {
    let (dir, port) = setup(0, "30s");
    let path = dir.path().join("retentiond.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, format!("{text}\n[safety]\ndry_run = true\n")).unwrap();
    let notify = NotifySocket::bind(dir.path());
    let d = serve(dir.path(), port, Some(&notify), None).await;
    let ready = notify.wait_for("READY=1");
    let status = ready.last().unwrap().lines().find_map(|l| l.strip_prefix("STATUS=")).unwrap().to_string();
    assert!(status.starts_with(&format!("serving on 127.0.0.1:{port}")), "{status}");
    assert!(status.contains("dry run"), "{status}");
    assert!(!status.contains("paused"), "{status}");

    assert_eq!(post(&d.base, OPERATOR, "/v1/admin/pause", json!({})).await.0, 200);
    let status = notify.wait_for_status("a paused status", |s| s.contains("paused"));
    assert!(status.contains("dry run"), "both gates: {status}");
    assert_eq!(post(&d.base, OPERATOR, "/v1/admin/resume", json!({})).await.0, 200);
    notify.wait_for_status("the pause lifted", |s| !s.contains("paused") && s.contains("dry run"));

    // Someone sets the clock far ahead: a clock anomaly, until approved.
    let (status, v) = post(&d.base, ADMIN, "/v1/admin/clock", json!({"set": "2026-06-01T00:00:00Z"})).await;
    assert_eq!(status, 200, "{v}");
    notify.wait_for_status("a clock anomaly", |s| s.contains("clock anomaly"));
    assert_eq!(post(&d.base, OPERATOR, "/v1/admin/approve", json!({})).await.0, 200);
    notify.wait_for_status("the anomaly approved", |s| !s.contains("clock anomaly"));

    // A reload that ends dry run: the line follows.
    std::fs::write(&path, text).unwrap();
    let out = reload(d.child.id());
    assert!(out.status.success());
    let status = notify.wait_for_status("dry run ended", |s| !s.contains("dry run") && s.contains("config reloaded"));
    assert_eq!(status, format!("serving on 127.0.0.1:{port}; config reloaded"));
}

async fn start_slow_deletion(d: &Served, dir: &Path) -> tokio::task::JoinHandle<(u16, Value)> {
    std::fs::create_dir_all(dir.join("data/t1/r1")).unwrap();
    let ev = json!({"event_id": "e1", "type": "resource.created", "at": T0, "tenant": "t1", "resource": "r1",
                    "product": "slowp", "billing": "prepaid", "term_end": "2026-01-02T00:00:00Z"});
    let (status, v) = post(&d.base, INGEST, "/v1/events", ev).await;
    assert_eq!(status, 200, "{v}");
    // The clock answer waits for the calls it started: run it aside.
    let base = d.base.clone();
    let clock = tokio::spawn(async move { post(&base, ADMIN, "/v1/admin/clock", json!({"advance": "3d"})).await });
    let deadline = Instant::now() + Duration::from_secs(30);
    while !dir.join("started").exists() {
        assert!(Instant::now() < deadline, "the slow executor never started");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    clock
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_a_running_deletion_finish_and_records_it() {
    let (dir, port) = setup(2, "30s");
    let mut d = serve(dir.path(), port, None, None).await;
    let _clock = start_slow_deletion(&d, dir.path()).await;
    d.signal("TERM");
    assert_eq!(d.exit_code(Duration::from_secs(30)), Some(0));
    assert!(dir.path().join("finished").exists(), "the daemon exited before its call finished");
    let audit = audit_kinds(dir.path());
    assert!(
        audit.iter().any(|r| r["kind"] == "copy.deleted" && r["data"]["store"] == "slow"),
        "the finished call is recorded before exit"
    );
    let out = retentiond(["audit", "verify"]).arg(dir.path().join("state")).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_past_the_drain_deadline_is_parked_and_resumed_at_the_next_start() {
    let (dir, port) = setup(4, "1s");
    let mut d = serve(dir.path(), port, None, None).await;
    let _clock = start_slow_deletion(&d, dir.path()).await;
    let stop = Instant::now();
    d.signal("TERM");
    assert_eq!(d.exit_code(Duration::from_secs(30)), Some(0));
    assert!(stop.elapsed() < Duration::from_secs(4), "the drain deadline bounds the stop: {:?}", stop.elapsed());
    assert!(!audit_kinds(dir.path()).iter().any(|r| r["kind"] == "copy.deleted" && r["data"]["store"] == "slow"));
    drop(d);

    // Nothing is lost: the stored intent is resumed at the next start.
    std::fs::remove_file(dir.path().join("started")).unwrap();
    let d = serve(dir.path(), port, None, None).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, r) = get(&d.base, AUDITOR, "/v1/resources/r1").await;
        if r["state"] == "purged" {
            break;
        }
        assert!(Instant::now() < deadline, "the parked call was not resumed: {r}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!dir.path().join("data/t1/r1").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_the_daemon_refuses_exits_2_with_one_message() {
    let (dir, port) = setup(0, "30s");
    let mut d = serve(dir.path(), port, None, None).await;
    let ev = json!({"event_id": "e1", "type": "resource.created", "at": T0, "tenant": "t1", "resource": "r1",
                    "product": "slowp", "billing": "prepaid", "term_end": "2026-06-01T00:00:00Z"});
    assert_eq!(post(&d.base, INGEST, "/v1/events", ev).await.0, 200);
    d.signal("TERM");
    assert_eq!(d.exit_code(Duration::from_secs(30)), Some(0));

    // The product r1 needs is gone: the start is refused, exit 2 (the
    // unit's RestartPreventExitStatus), the reason said once.
    let path = dir.path().join("retentiond.toml");
    let text = std::fs::read_to_string(&path).unwrap().replace("[products.slowp]", "[products.renamed]");
    std::fs::write(&path, text).unwrap();
    let out = serve_command(dir.path(), "warn").output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.matches("products still in use are missing").count(), 1, "{stderr}");
    assert!(stderr.contains("\"slowp\" (1 resources)"), "{stderr}");
    assert!(!stderr.contains('\u{1b}'), "no colour codes off a terminal: {stderr}");
}

/// Logs as JSON on request, one object per line, and neither the logs nor
/// the audit log hold what tenants or authorities wrote (a hold's reason,
/// an amount owed): identifiers, kinds and times only. SIGINT stops the
/// daemon like SIGTERM.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_and_audit_hold_identifiers_only_and_sigint_stops_cleanly() {
    let (dir, port) = setup(0, "30s");
    let log_path = dir.path().join("daemon.log");
    let child = serve_command(dir.path(), "debug")
        .env("RETENTIOND_LOG_FORMAT", "json")
        .stdout(Stdio::null())
        .stderr(Stdio::from(std::fs::File::create(&log_path).unwrap()))
        .spawn()
        .unwrap();
    let mut d = Served::wait_healthy(child, format!("http://127.0.0.1:{port}")).await;
    std::fs::create_dir_all(dir.path().join("data/t1/r1")).unwrap();
    let events = json!([
        {"event_id": "e1", "type": "resource.created", "at": T0, "tenant": "t1", "resource": "r1",
         "product": "ecs", "billing": "postpaid"},
        {"event_id": "e2", "type": "arrears.started", "at": T0, "tenant": "t1", "resource": "r1",
         "amount": "123.45", "currency": "EUR"},
    ]);
    assert_eq!(post(&d.base, INGEST, "/v1/events", events).await.0, 200);
    let hold = json!([
        {"event_id": "h1", "type": "hold.placed", "at": T0, "tenant": "t1", "hold_id": "case-1",
         "authority": "Amtsgericht Beispielstadt", "reason": "Verfahren 4711 Mueller gegen Beispiel GmbH"},
        {"event_id": "h2", "type": "hold.released", "at": T0, "tenant": "t1", "hold_id": "case-1"},
    ]);
    assert_eq!(post(&d.base, OPERATOR, "/v1/events", hold).await.0, 200);
    let (status, v) = post(&d.base, ADMIN, "/v1/admin/clock", json!({"advance": "20d"})).await;
    assert_eq!(status, 200, "{v}");
    let (_, r) = get(&d.base, AUDITOR, "/v1/resources/r1").await;
    assert_eq!(r["state"], "purged", "{r}");

    d.signal("INT");
    assert_eq!(d.exit_code(Duration::from_secs(30)), Some(0));
    let log = std::fs::read_to_string(&log_path).unwrap();
    let audit = std::fs::read_to_string(dir.path().join("state/audit.jsonl")).unwrap();
    assert!(log.lines().count() > 5, "{log}");
    for line in log.lines() {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
        assert!(v["level"].is_string() && v["timestamp"].is_string(), "{line}");
    }
    assert!(log.contains("SIGINT"), "{log}");
    // Words of the reason, not its case number: digits turn up in
    // timestamps and durations.
    for secret in ["Verfahren", "Mueller", "Beispiel GmbH", "Amtsgericht", "123.45", "EUR"] {
        let line = log.lines().find(|l| l.contains(secret));
        assert!(line.is_none(), "the log holds {secret:?}: {line:?}");
        assert!(!audit.contains(secret), "the audit log holds {secret:?}");
    }
    assert!(audit.contains("\"kind\":\"resource.purged\""), "the scenario ran to the end");
}

/// Runs `serve` on `dir`'s config with stderr going to `log`, `env` set,
/// until the API answers; then stops it with SIGTERM and returns the log.
async fn serve_and_read_log(dir: &Path, port: u16, log: &Path, env: &[(&str, &str)]) -> String {
    let child = serve_command(dir, "info")
        .env_remove("JOURNAL_STREAM")
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::from(std::fs::OpenOptions::new().append(true).open(log).unwrap()))
        .spawn()
        .unwrap();
    let mut d = Served::wait_healthy(child, format!("http://127.0.0.1:{port}")).await;
    d.signal("TERM");
    assert_eq!(d.exit_code(Duration::from_secs(30)), Some(0));
    std::fs::read_to_string(log).unwrap()
}

/// Under journald (JOURNAL_STREAM names stderr's device and inode), each
/// line starts with its syslog priority, `<4>` for a warning and `<6>` for
/// info, and carries no timestamp of its own (journald stamps every line);
/// JSON lines get the prefix too. Without the variable, or when it names
/// another stream, the plain format with its timestamp stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_journald_log_lines_carry_their_priority_and_no_timestamp() {
    use std::os::unix::fs::MetadataExt;
    let (dir, port) = setup(0, "30s");
    let log = dir.path().join("stderr.log");
    std::fs::write(&log, "").unwrap();
    let meta = std::fs::metadata(&log).unwrap();
    let stream = format!("{}:{}", meta.dev(), meta.ino());
    // The test config has no [notifier]: the daemon warns about it.
    let warn = "no [notifier]";
    let info = "retentiond ready";
    let is_timestamp = |s: &str| s.len() >= 20 && s.as_bytes()[4] == b'-' && s.as_bytes()[10] == b'T';

    let text = serve_and_read_log(dir.path(), port, &log, &[("JOURNAL_STREAM", &stream)]).await;
    let warn_line = text.lines().find(|l| l.contains(warn)).unwrap_or_else(|| panic!("{text}"));
    assert!(warn_line.starts_with("<4>"), "{warn_line}");
    let info_line = text.lines().find(|l| l.contains(info)).unwrap_or_else(|| panic!("{text}"));
    assert!(info_line.starts_with("<6>"), "{info_line}");
    for line in text.lines() {
        assert!(line.starts_with('<'), "every line has a priority: {line}");
        let rest = line.split_once('>').unwrap().1.trim_start();
        assert!(!is_timestamp(rest), "no timestamp of our own: {line}");
    }

    std::fs::write(&log, "").unwrap();
    let text =
        serve_and_read_log(dir.path(), port, &log, &[("JOURNAL_STREAM", &stream), ("RETENTIOND_LOG_FORMAT", "json")])
            .await;
    let warn_line = text.lines().find(|l| l.contains(warn)).unwrap_or_else(|| panic!("{text}"));
    let json: Value = serde_json::from_str(warn_line.strip_prefix("<4>").unwrap_or_else(|| panic!("{warn_line}")))
        .unwrap_or_else(|e| panic!("{e}: {warn_line}"));
    assert_eq!(json["level"], "WARN");

    for env in [&[][..], &[("JOURNAL_STREAM", "1:2")][..]] {
        std::fs::write(&log, "").unwrap();
        let text = serve_and_read_log(dir.path(), port, &log, env).await;
        let warn_line = text.lines().find(|l| l.contains(warn)).unwrap_or_else(|| panic!("{text}"));
        assert!(is_timestamp(warn_line), "the plain format starts with a timestamp: {warn_line}");
        assert!(warn_line.contains(" WARN "), "{warn_line}");
        assert!(!text.lines().any(|l| l.starts_with('<')), "{env:?}: {text}");
    }
}
