//! `retentiond ctl`: the real binary against the in-process daemon. Every
//! assertion is on what a user sees (exit code, the table, stderr) or on the
//! daemon's state read through the API.

mod common;
// Whole tables pinned, apart from the behaviour tested here.
#[path = "ctl/tables.rs"]
mod tables;
// `ctl hold list`.
#[path = "ctl/holds.rs"]
mod holds;
// `ctl request`, `ctl subject`, `ctl retry --subject`, `audit receipt`.
#[path = "ctl/privacy.rs"]
mod privacy;

use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::process::Stdio;
use tokio::io::AsyncWriteExt;

/// What one run of `retentiond ctl` left behind.
#[derive(Debug)]
struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Out {
    /// True if a stdout line starts with these whitespace-separated cells.
    fn has_row(&self, cells: &[&str]) -> bool {
        self.stdout.lines().any(|l| l.split_whitespace().take(cells.len()).eq(cells.iter().copied()))
    }

    /// The value of a `key  value` line.
    fn field(&self, key: &str) -> Option<String> {
        self.stdout.lines().find_map(|l| {
            let (k, v) = l.split_once(char::is_whitespace)?;
            (k == key).then(|| v.trim().to_string())
        })
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {self:?}"))
    }
}

/// Runs `retentiond ctl ARGS` with only the given ctl variables set, without
/// blocking the runtime the in-process daemon serves on.
async fn run(envs: &[(&str, &str)], args: &[&str], stdin: Option<&str>) -> Out {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_retentiond"));
    cmd.arg("ctl").args(args);
    for var in ["RETENTIOND_ADDR", "RETENTIOND_TOKEN", "RETENTIOND_TOKEN_FILE"] {
        cmd.env_remove(var);
    }
    cmd.envs(envs.iter().copied())
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().unwrap();
    if let Some(text) = stdin {
        let mut pipe = child.stdin.take().unwrap();
        pipe.write_all(text.as_bytes()).await.unwrap();
    }
    let out = child.wait_with_output().await.unwrap();
    Out {
        code: out.status.code().expect("exited, not killed"),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `ctl ARGS` against the harness with `token` in RETENTIOND_TOKEN.
async fn ctl(h: &Harness, token: &str, args: &[&str]) -> Out {
    run(&[("RETENTIOND_ADDR", &h.base), ("RETENTIOND_TOKEN", token)], args, None).await
}

/// `ctl ARGS` with `stdin` piped in.
async fn ctl_in(h: &Harness, token: &str, args: &[&str], stdin: &str) -> Out {
    run(&[("RETENTIOND_ADDR", &h.base), ("RETENTIOND_TOKEN", token)], args, Some(stdin)).await
}

fn ok(out: &Out) {
    assert_eq!(out.code, 0, "{out:?}");
}

fn event(id: &str, kind: &str, resource: &str, extra: Value) -> Value {
    let mut v = json!({"event_id": id, "type": kind, "at": T0, "tenant": "t1", "resource": resource});
    v.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    v
}

fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_from_a_file_and_stdin_are_applied() {
    let h = Harness::start().await;
    let file = h.dir.path().join("batch.json");
    let array =
        json!([created("e1", "t1", "r1", "2026-02-01T00:00:00Z"), created("e2", "t1", "r2", "2026-02-01T00:00:00Z")]);
    std::fs::write(&file, serde_json::to_string_pretty(&array).unwrap()).unwrap();
    let out = ctl(&h, INGEST, &["events", file.to_str().unwrap()]).await;
    ok(&out);
    assert!(out.has_row(&["EVENT_ID", "STATUS", "ERROR"]), "{out:?}");
    assert!(out.has_row(&["e1", "applied"]) && out.has_row(&["e2", "applied"]), "{out:?}");

    // JSON Lines on standard input, with a blank line.
    let lines = format!(
        "{}\n\n{}\n",
        created("e3", "t1", "r3", "2026-02-01T00:00:00Z"),
        event("e4", "resource.released", "r1", json!({}))
    );
    let out = ctl_in(&h, INGEST, &["events", "-"], &lines).await;
    ok(&out);
    assert!(out.has_row(&["e3", "applied"]) && out.has_row(&["e4", "applied"]), "{out:?}");
    // A JSON array on standard input, with no FILE argument; a repeat is a duplicate.
    let out = ctl_in(&h, INGEST, &["events"], &array.to_string()).await;
    ok(&out);
    assert!(out.has_row(&["e1", "duplicate"]), "{out:?}");

    for r in ["r1", "r2", "r3"] {
        assert_eq!(h.resource(r).await["tenant"], "t1");
    }
    assert!(!h.resource("r1").await["buffers"]["release"].is_null(), "the release on stdin was applied");
    let out = ctl(&h, AUDITOR, &["resource", "r3"]).await;
    ok(&out);
    assert_eq!(out.field("state").as_deref(), Some("active"), "{out:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_event_exits_1_and_a_malformed_one_names_line_and_field() {
    let h = Harness::start().await;
    // A renewal of a resource nobody created: well-formed, rejected.
    let renewal = event("n1", "resource.renewed", "ghost", json!({"term_end": "2026-06-01T00:00:00Z"}));
    let out = ctl_in(&h, INGEST, &["events"], &renewal.to_string()).await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.has_row(&["n1", "rejected"]), "{out:?}");
    assert!(out.stderr.starts_with("retentiond ctl: 1 of 1 events rejected"), "{out:?}");

    // Line 2 is malformed: 400 naming line and field; nothing of line 1 is stored.
    let mut bad = created("b2", "t1", "rb", "2026-02-01T00:00:00Z");
    bad["at"] = json!("yesterday");
    let lines = format!("{}\n{bad}\n", created("b1", "t1", "ra", "2026-02-01T00:00:00Z"));
    let out = ctl_in(&h, INGEST, &["events", "-"], &lines).await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.starts_with("retentiond ctl: bad request (400): "), "{out:?}");
    assert!(out.stderr.contains("line 2 of standard input") && out.stderr.contains("field at: "), "{out:?}");
    assert!(out.stderr.ends_with("; nothing of the request was stored\n"), "{out:?}");
    assert_eq!(out.stderr.lines().count(), 1, "one line: {out:?}");
    assert_eq!(h.get_as(AUDITOR, "/v1/resources/ra").await.0, StatusCode::NOT_FOUND);

    // Not JSON at all: caught before sending, with the position.
    let out = ctl_in(&h, INGEST, &["events"], "{\"event_id\": nope}").await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("standard input: not one JSON event") && out.stderr.contains("line 1"), "{out:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_output_is_the_servers_json() {
    let h = Harness::start().await;
    let out =
        ctl_in(&h, INGEST, &["--json", "events"], &created("e1", "t1", "r1", "2026-02-01T00:00:00Z").to_string()).await;
    ok(&out);
    assert_eq!(out.json()["results"][0]["status"], "applied");
    // --json is global: it may follow the subcommand.
    let out = ctl(&h, AUDITOR, &["resource", "r1", "--json"]).await;
    ok(&out);
    assert_eq!(out.json(), h.resource("r1").await);
    let out = ctl(&h, AUDITOR, &["--json", "forecast", "--before", "2026-03-01T00:00:00Z"]).await;
    ok(&out);
    assert_eq!(out.json()["deletions"][0]["resource"], "r1");
    assert_eq!(out.json()["deletions"][0]["deadline"], "2026-02-16T00:00:00Z");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_comes_from_a_flag_a_variable_or_a_file() {
    let h = Harness::start().await;
    h.apply(created("e1", "t1", "r1", "2026-02-01T00:00:00Z")).await;
    let file = h.dir.path().join("token");
    std::fs::write(&file, format!("  {AUDITOR}\n")).unwrap();
    let path = file.to_str().unwrap();
    let addr = h.base.as_str();
    type Vars<'a> = Vec<(&'a str, &'a str)>;
    let cases: Vec<(Vars, Vec<&str>)> = vec![
        (vec![("RETENTIOND_ADDR", addr), ("RETENTIOND_TOKEN", AUDITOR)], vec![]),
        (vec![("RETENTIOND_ADDR", addr)], vec!["--token-file", path]),
        (vec![("RETENTIOND_ADDR", addr), ("RETENTIOND_TOKEN_FILE", path)], vec![]),
        (vec![], vec!["--addr", addr, "--token", AUDITOR]),
        // A flag beats the environment.
        (vec![("RETENTIOND_ADDR", addr), ("RETENTIOND_TOKEN", "stale")], vec!["--token-file", path]),
    ];
    for (envs, flags) in cases {
        let mut args = flags.clone();
        args.extend(["resource", "r1"]);
        let out = run(&envs, &args, None).await;
        assert_eq!(out.code, 0, "{envs:?} {flags:?}: {out:?}");
        assert_eq!(out.field("resource").as_deref(), Some("r1"));
    }
    let out = run(&[("RETENTIOND_ADDR", addr)], &["resource", "r1"], None).await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("token refused (401): missing bearer token"), "{out:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_token_is_refused_without_echoing_it() {
    let h = Harness::start().await;
    let secret = "wrong-but-secret-token-7f3a";
    let out = ctl(&h, secret, &["audit"]).await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.starts_with("retentiond ctl: token refused (401): unknown token"), "{out:?}");
    assert!(out.stderr.contains("RETENTIOND_TOKEN"), "{out:?}");
    assert!(!out.stderr.contains(secret) && !out.stdout.contains(secret), "{out:?}");
    // Nor when given as a flag and the request fails otherwise.
    let out = run(&[], &["--addr", &format!("127.0.0.1:{}", closed_port()), "--token", secret, "pause"], None).await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(!out.stderr.contains(secret), "{out:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_auditor_may_not_pause() {
    let h = Harness::start().await;
    h.apply(created("e1", "t1", "r1", "2026-02-01T00:00:00Z")).await;
    let out = ctl(&h, AUDITOR, &["pause"]).await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.starts_with("retentiond ctl: the token's role may not do this (403): role auditor"), "{out:?}");
    let (_, v) = h.get_as(AUDITOR, "/v1/deletions?before=2027-01-01T00:00:00Z").await;
    assert_eq!(v["deletions"][0]["blockers"], json!([]), "not paused: {v}");
    // An ingest token may not place a hold: 403, nothing stored.
    let out = ctl(
        &h,
        INGEST,
        &["hold", "place", "--hold-id", "h1", "--authority", "A", "--reason", "R", "--tenant", "t1", "--at", T0],
    )
    .await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("(403): role ingest may not post hold.placed events"), "{out:?}");
    assert_eq!(h.resource("r1").await["holds"], json!([]));

    // With --resource alone the tenant is read first, which ingest may not
    // do either: the message is about holds, with no --tenant suggestion.
    let place = ["hold", "place", "--hold-id", "h1", "--authority", "A", "--reason", "R", "--at", T0];
    let mut args = place.to_vec();
    args.extend(["--resource", "r1"]);
    let out = ctl(&h, INGEST, &args).await;
    assert_eq!(out.code, 1, "{out:?}");
    assert_eq!(
        out.stderr,
        "retentiond ctl: the token's role may not place holds (403: role ingest may not do this); \
         an operator or admin token is needed\n"
    );
    let mut args = vec!["hold", "release", "--hold-id", "h1", "--resource", "r1"];
    args.extend(["--at", T0]);
    let out = ctl(&h, INGEST, &args).await;
    assert!(out.stderr.starts_with("retentiond ctl: the token's role may not release holds (403"), "{out:?}");
    let out = ctl(&h, "unknown-token", &args).await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.starts_with("retentiond ctl: token refused (401): unknown token"), "{out:?}");
    assert!(out.stderr.contains("operator or admin") && !out.stderr.contains("--tenant"), "{out:?}");
    // An unknown resource: --tenant is the way round.
    let mut args = place.to_vec();
    args.extend(["--resource", "ghost"]);
    let out = ctl(&h, OPERATOR, &args).await;
    assert_eq!(out.code, 1, "{out:?}");
    assert_eq!(
        out.stderr,
        "retentiond ctl: reading resource ghost for its tenant (or give --tenant): not found (404): \
         unknown resource \"ghost\"\n"
    );
    assert_eq!(h.resource("r1").await["holds"], json!([]));
}

#[tokio::test]
async fn connection_refused_names_the_address() {
    let port = closed_port();
    for addr in [format!("127.0.0.1:{port}"), format!("http://127.0.0.1:{port}/")] {
        let out = run(&[("RETENTIOND_ADDR", &addr), ("RETENTIOND_TOKEN", AUDITOR)], &["resource", "r1"], None).await;
        assert_eq!(out.code, 1, "{out:?}");
        let want = format!("retentiond ctl: cannot connect to http://127.0.0.1:{port}: ");
        assert!(out.stderr.starts_with(&want), "{out:?}");
        assert!(out.stderr.to_lowercase().contains("refused") && out.stderr.contains("--addr or RETENTIOND_ADDR"));
        assert_eq!(out.stderr.lines().count(), 1, "{out:?}");
    }
    let out = run(&[], &["--addr", "ftp://127.0.0.1:1", "status"], None).await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("not an http(s) address"), "{out:?}");
}

/// `--addr HOST` means the daemon's port 7300, not http's 80: a relay on
/// 127.0.0.2:7300 (a loopback address nothing else here listens on) to the
/// in-process daemon answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_without_a_port_means_port_7300() {
    let h = Harness::start().await;
    let relay = match tokio::net::TcpListener::bind("127.0.0.2:7300").await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("skipped: cannot listen on 127.0.0.2:7300: {e}");
            return;
        }
    };
    let target = h.base.trim_start_matches("http://").to_string();
    let relaying = tokio::spawn(async move {
        while let Ok((mut inbound, _)) = relay.accept().await {
            let target = target.clone();
            tokio::spawn(async move {
                let mut outbound = tokio::net::TcpStream::connect(target).await.unwrap();
                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
            });
        }
    });
    for addr in ["127.0.0.2", "http://127.0.0.2/"] {
        let out = run(&[("RETENTIOND_ADDR", addr), ("RETENTIOND_TOKEN", AUDITOR)], &["status"], None).await;
        ok(&out);
        assert_eq!(out.field("now").as_deref(), Some(T0), "{out:?}");
    }
    relaying.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_to_the_plain_http_daemon_says_to_use_http() {
    let h = Harness::start().await;
    let plain = h.base.trim_start_matches("http://");
    let out = run(&[("RETENTIOND_TOKEN", AUDITOR)], &["--addr", &format!("https://{plain}"), "status"], None).await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.starts_with(&format!("retentiond ctl: TLS with https://{plain} failed: ")), "{out:?}");
    assert!(out.stderr.contains("plain http") && out.stderr.contains(&format!("use --addr http://{plain}")));
    assert_eq!(out.stderr.lines().count(), 1, "{out:?}");
    assert!(!out.stderr.contains(AUDITOR), "{out:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_errors_exit_2() {
    for args in [
        &["clock", "advance", "15 fortnights"][..],
        &["forecast"],
        &["resource", "../etc"],
        &["hold", "place", "--hold-id", "h", "--authority", "A", "--reason", "R"],
        &["restore-check", "--resource", "r1", "--tenant", "t1"],
    ] {
        let out = run(&[], args, None).await;
        assert_eq!(out.code, 2, "{args:?}: {out:?}");
    }
    // Not "--before is required": either option will do.
    let out = run(&[], &["forecast"], None).await;
    assert_eq!(out.stderr, "retentiond ctl: forecast: give --before RFC3339 or --within DURATION\n");
}

/// Expiry end to end through ctl: forecast, clock, resource, certificate,
/// and the certificate checked offline against the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_clock_moves_and_a_purged_resource_has_a_certificate_that_checks() {
    let h = Harness::start().await;
    let data = h.make_data("t1", "r1");
    h.apply(created("e1", "t1", "r1", "2026-01-10T00:00:00Z")).await;

    let out = ctl(&h, AUDITOR, &["forecast", "--before", "2026-02-01T00:00:00Z"]).await;
    ok(&out);
    assert!(out.has_row(&["DEADLINE", "RESOURCE", "TENANT", "STATE", "CAUSE", "PROJECTED", "BLOCKERS"]), "{out:?}");
    assert!(out.has_row(&["2026-01-25T00:00:00Z", "r1", "t1", "active", "expiry", "yes", "-"]), "{out:?}");
    let out = ctl(&h, AUDITOR, &["forecast", "--before", "2026-01-20T00:00:00Z"]).await;
    assert!(out.stdout.contains("(none)") && !out.has_row(&["2026-01-25T00:00:00Z"]), "{out:?}");

    let out = ctl(&h, OPERATOR, &["clock", "advance", "15d"]).await;
    assert_eq!(out.code, 1, "only admin moves the clock: {out:?}");
    let out = ctl(&h, ADMIN, &["clock", "advance", "15d"]).await;
    ok(&out);
    assert_eq!(out.stdout, "now: 2026-01-16T00:00:00Z\n");
    let out = ctl(&h, AUDITOR, &["resource", "r1"]).await;
    assert_eq!(out.field("state").as_deref(), Some("retained"), "{out:?}");
    assert_eq!(out.field("delete_after").as_deref(), Some("2026-01-25T00:00:00Z"), "{out:?}");
    assert!(data.exists());

    let out = ctl(&h, ADMIN, &["clock", "advance", "9d"]).await;
    ok(&out);
    assert!(!data.exists(), "term end + 15-day buffer passed");
    let out = ctl(&h, AUDITOR, &["resource", "r1"]).await;
    ok(&out);
    assert_eq!(out.field("state").as_deref(), Some("purged"), "{out:?}");
    assert!(out.has_row(&["primary", "primary", "online", "deleted"]), "{out:?}");
    assert!(out.stdout.contains("history:\nAT"), "{out:?}");

    let out = ctl(&h, AUDITOR, &["certificate", "r1"]).await;
    ok(&out);
    assert_eq!(out.field("resource").as_deref(), Some("r1"));
    assert_eq!(out.field("cause").as_deref(), Some("expiry"));
    assert!(out.has_row(&["primary", "primary", "online", "deleted"]), "{out:?}");
    let cert = ctl(&h, AUDITOR, &["--json", "certificate", "r1"]).await;
    ok(&cert);
    assert_eq!(cert.json()["resource"], "r1");
    let state = h.state_dir();
    let mut check = tokio::process::Command::new(env!("CARGO_BIN_EXE_retentiond"));
    check.args(["audit", "certificate", "--file", "-", "--log"]).arg(&state);
    check.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = check.spawn().unwrap();
    child.stdin.take().unwrap().write_all(cert.stdout.as_bytes()).await.unwrap();
    let checked = child.wait_with_output().await.unwrap();
    let said = String::from_utf8_lossy(&checked.stdout);
    assert!(checked.status.success(), "{said} {}", String::from_utf8_lossy(&checked.stderr));
    assert!(said.starts_with("ok: certificate of r1 holds"), "{said}");

    let out = ctl(&h, AUDITOR, &["certificate", "r2"]).await;
    assert_eq!(out.code, 1);
    assert!(out.stderr.starts_with("retentiond ctl: not found (404): "), "{out:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hold_placed_through_ctl_stops_deletion_until_released() {
    let h = Harness::start().await;
    let data = h.make_data("t1", "r1");
    h.apply(created("e1", "t1", "r1", "2026-01-10T00:00:00Z")).await;
    // No --tenant: read from the resource.
    let place = ["hold", "place", "--hold-id", "court-1", "--authority", "District court", "--reason", "case 12"];
    let mut args = place.to_vec();
    args.extend(["--resource", "r1", "--at", T0, "--event-id", "hp-1"]);
    let out = ctl(&h, OPERATOR, &args).await;
    ok(&out);
    assert!(out.has_row(&["hp-1", "applied"]), "{out:?}");
    // A retry with the same --event-id is not posted twice.
    let out = ctl(&h, OPERATOR, &args).await;
    ok(&out);
    assert!(out.has_row(&["hp-1", "duplicate"]), "{out:?}");
    // The same hold again under a new event id: rejected for the hold, and
    // no hint about the event's time, which is not the problem.
    *args.last_mut().unwrap() = "hp-2";
    let out = ctl(&h, OPERATOR, &args).await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.has_row(&["hp-2", "rejected"]), "{out:?}");
    assert!(out
        .stderr
        .starts_with("retentiond ctl: hold.placed event hp-2 rejected: hold \"court-1\" is already placed"));
    assert!(!out.stderr.contains("--at") && out.stderr.lines().count() == 1, "{out:?}");
    // Dated a year ahead of the daemon's clock: then --at is the fix.
    let mut ahead = place.to_vec();
    ahead[3] = "court-9";
    ahead.extend(["--resource", "r1", "--at", "2027-01-01T00:00:00Z", "--event-id", "hp-9"]);
    let out = ctl(&h, OPERATOR, &ahead).await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.starts_with("retentiond ctl: hold.placed event hp-9 rejected: at 2027-01-01T00:00:00Z"));
    assert!(out.stderr.contains("max_future_skew") && out.stderr.ends_with("; --at sets the event's time\n"));
    let out = ctl(&h, AUDITOR, &["resource", "r1"]).await;
    assert_eq!(out.field("holds").as_deref(), Some("court-1 (resource, District court: case 12)"), "{out:?}");
    let out = ctl(&h, AUDITOR, &["forecast", "--before", "2026-02-01T00:00:00Z"]).await;
    assert!(out.has_row(&["2026-01-25T00:00:00Z", "r1", "t1", "active", "expiry", "yes", "hold:court-1"]), "{out:?}");
    // A tenant-wide hold, with a generated event id.
    let mut args = place.to_vec();
    args[3] = "legal-2";
    args.extend(["--tenant", "t1", "--at", T0]);
    let out = ctl(&h, OPERATOR, &args).await;
    ok(&out);
    assert!(out.stdout.lines().any(|l| l.starts_with("ctl-hold-placed-legal-2-") && l.contains("applied")), "{out:?}");
    let holds = h.resource("r1").await["holds"].clone();
    assert_eq!(holds.as_array().unwrap().len(), 2, "{holds}");

    h.advance("30d").await;
    assert!(data.exists(), "held");
    for (hold, scope) in [("court-1", ["--resource", "r1"]), ("legal-2", ["--tenant", "t1"])] {
        let mut args = vec!["hold", "release", "--hold-id", hold, "--at", "2026-01-31T00:00:00Z"];
        args.extend(scope);
        let out = ctl(&h, OPERATOR, &args).await;
        ok(&out);
        assert!(out.stdout.contains(" applied"), "{out:?}");
    }
    let out = ctl(&h, AUDITOR, &["resource", "r1"]).await;
    assert_eq!(out.field("holds").as_deref(), Some("none"), "{out:?}");
    h.advance("1d").await;
    assert!(!data.exists(), "deleted a day after the last release");
    // Releasing an unknown hold is rejected: exit 1 with the event id to retry.
    let out =
        ctl(&h, OPERATOR, &["hold", "release", "--hold-id", "nope", "--tenant", "t1", "--at", "2026-02-01T00:00:00Z"])
            .await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("hold.released event ctl-hold-released-nope-"), "{out:?}");
}

/// What stops the first listed deletion, through the API.
async fn blockers(h: &Harness) -> Value {
    let (_, v) = h.get_as(AUDITOR, "/v1/deletions?before=2027-01-01T00:00:00Z").await;
    v["deletions"][0]["blockers"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_resume_approve_and_retry() {
    let config = base_config("").replace("state_dir = \"state\"", "state_dir = \"state\"\nmax_attempts = 1");
    let h = Harness::with_config(&config).await;
    h.make_data("t1", "r1");
    h.apply(created("e1", "t1", "r1", "2026-01-10T00:00:00Z")).await;
    let out = ctl(&h, OPERATOR, &["pause"]).await;
    ok(&out);
    assert!(out.stdout.starts_with("paused"), "{out:?}");
    assert_eq!(blockers(&h).await, json!(["paused"]));
    let out = ctl(&h, OPERATOR, &["resume"]).await;
    ok(&out);
    assert_eq!(out.stdout, "resumed\n");
    assert_eq!(blockers(&h).await, json!([]));
    let out = ctl(&h, OPERATOR, &["approve"]).await;
    ok(&out);
    assert_eq!(out.stdout, "approved: nothing was stopped\n");
    // Retrying what does not exist is an error, not "retried 0".
    let out = ctl(&h, OPERATOR, &["retry", "nope"]).await;
    assert_eq!((out.code, out.stdout.as_str()), (1, ""), "{out:?}");
    assert_eq!(out.stderr, "retentiond ctl: not found (404): unknown resource \"nope\"\n");
    let out = ctl(&h, OPERATOR, &["retry", "r1", "--store", "nosuch"]).await;
    assert_eq!((out.code, out.stdout.as_str()), (1, ""), "{out:?}");
    assert_eq!(
        out.stderr,
        "retentiond ctl: bad request (400): field store: resource \"r1\" has no copy in store \"nosuch\"\n"
    );

    // The store's volume is gone: the deletion fails once and is stuck.
    std::fs::remove_dir_all(h.dir.path().join("data")).unwrap();
    h.set_clock("2026-01-25T00:00:00Z").await;
    let out = ctl(&h, AUDITOR, &["resource", "r1"]).await;
    assert!(out.has_row(&["primary", "primary", "online", "deleting", "(stuck)", "1"]), "{out:?}");
    fs_root(&h.dir.path().join("data")); // the volume is back
    let out = ctl(&h, OPERATOR, &["retry", "r1", "--store", "primary"]).await;
    ok(&out);
    assert_eq!(out.stdout, "retried 1 stuck copies\n");
    h.advance("0s").await;
    assert_eq!(h.resource("r1").await["state"], "purged");
    let out = ctl(&h, OPERATOR, &["--json", "retry", "r1"]).await;
    ok(&out);
    assert_eq!(out.json(), json!({"retried": 0}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_lists_records_after_a_sequence_number() {
    let h = Harness::start().await;
    for i in 1..=3 {
        h.apply(created(&format!("e{i}"), "t1", &format!("r{i}"), "2026-02-01T00:00:00Z")).await;
    }
    let out = ctl(&h, AUDITOR, &["audit"]).await;
    ok(&out);
    assert!(out.has_row(&["SEQ", "AT", "KIND", "TENANT", "RESOURCE"]), "{out:?}");
    for i in 1..=3 {
        let (seq, r) = (i.to_string(), format!("r{i}"));
        assert!(out.has_row(&[&seq, T0, "event.applied", "t1", &r]), "{out:?}");
    }
    let out = ctl(&h, AUDITOR, &["audit", "--after-seq", "2"]).await;
    ok(&out);
    assert_eq!(out.stdout.lines().count(), 2, "{out:?}");
    assert!(out.has_row(&["3", T0, "event.applied", "t1", "r3"]), "{out:?}");
    let out = ctl(&h, AUDITOR, &["audit", "--after-seq", "1", "--limit", "1"]).await;
    assert!(out.has_row(&["2"]) && out.stdout.contains("--after-seq 2"), "{out:?}");
    let out = ctl(&h, AUDITOR, &["--json", "audit", "--after-seq", "3"]).await;
    assert_eq!(out.json(), json!({"records": []}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_check_exits_0_when_allowed_and_3_when_refused() {
    let h = Harness::start().await;
    h.apply(created("e1", "t1", "r1", "2026-02-01T00:00:00Z")).await;
    let out = ctl(&h, AUDITOR, &["restore-check", "--resource", "r1"]).await;
    assert_eq!((out.code, out.stdout.as_str()), (0, "allowed: resource r1 is active\n"), "{out:?}");
    let out = ctl(&h, AUDITOR, &["restore-check", "--resource", "r9"]).await;
    assert_eq!((out.code, out.stdout.as_str()), (3, "refused: unknown resource r9\n"), "{out:?}");
    assert_eq!(out.stderr, "");
    let out = ctl(&h, AUDITOR, &["restore-check", "--tenant", "t1"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    h.apply(created("e2", "t1", "r2", "2026-02-01T00:00:00Z")).await;
    h.apply(event("e3", "resource.released", "r2", json!({}))).await;
    h.advance("0s").await;
    let out = ctl(&h, AUDITOR, &["restore-check", "--tenant", "t1"]).await;
    assert_eq!(out.code, 3, "{out:?}");
    assert!(out.stdout.starts_with("refused: 1 resources of tenant t1"), "{out:?}");
    assert!(out.has_row(&["r2", "resource", "r2", "is", "purged;"]), "{out:?}");
    let out = ctl(&h, AUDITOR, &["--json", "restore-check", "--resource", "r2"]).await;
    assert_eq!((out.code, &out.json()["allowed"]), (3, &json!(false)), "{out:?}");
}

/// The policy versions /readyz reports, by product.
async fn policies(h: &Harness) -> Value {
    let (status, v) = h.get_as(AUDITOR, "/readyz").await;
    assert_eq!(status, StatusCode::OK, "{v}");
    v["policies"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_shows_readiness_the_daemons_clock_and_policy_versions() {
    let h = Harness::start().await;
    let version = policies(&h).await["ecs"].as_str().unwrap().to_string();
    let out = ctl(&h, AUDITOR, &["status"]).await;
    ok(&out);
    assert_eq!(out.field("ready").as_deref(), Some("true"), "{out:?}");
    assert_eq!(out.field("now").as_deref(), Some(T0), "the manual clock: {out:?}");
    assert_eq!(out.field("paused").as_deref(), Some("false"), "{out:?}");
    assert_eq!(out.field("policies"), Some(format!("ecs {version}")), "{out:?}");
    assert_eq!(out.stderr, "");

    ok(&ctl(&h, OPERATOR, &["pause"]).await);
    let out = ctl(&h, AUDITOR, &["status", "--json"]).await;
    ok(&out);
    assert_eq!(out.json(), h.get_as(AUDITOR, "/readyz").await.1, "the daemon's answer");
    assert_eq!(out.json()["paused"], true);
    assert_eq!(out.json()["policies"], json!({ "ecs": version }));

    // The billing feed reads nothing.
    let out = ctl(&h, INGEST, &["status"]).await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.starts_with("retentiond ctl: the token's role may not do this (403): "), "{out:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_shows_the_clock_and_a_refused_reload_yet_exits_0() {
    let h = Harness::start().await;
    let out = ctl(&h, AUDITOR, &["status"]).await;
    ok(&out);
    assert_eq!(out.field("clock").as_deref(), Some("manual"), "{out:?}");
    assert_eq!(out.field("last_reload").as_deref(), Some("none since start"), "{out:?}");

    std::fs::write(h.config_path(), "[daemon\nstate_dir = \"state\"\n").unwrap();
    h.daemon.as_ref().unwrap().reload().await.expect_err("a broken config is refused");
    // Ready on the config in force: exit 0, the refusal on stdout and stderr.
    let out = ctl(&h, AUDITOR, &["status"]).await;
    ok(&out);
    assert_eq!(out.field("ready").as_deref(), Some("true"), "{out:?}");
    let line = out.field("last_reload").unwrap();
    assert!(line.starts_with(&format!("REFUSED at {T0}: ")) && line.contains("retentiond.toml"), "{out:?}");
    assert!(out.stderr.starts_with(&format!("retentiond ctl: last reload REFUSED at {T0}: ")), "{out:?}");
    assert!(out.stderr.ends_with("; the previous config stays in force\n"), "{out:?}");
    assert_eq!(out.stderr.lines().count(), 1, "{out:?}");
    let out = ctl(&h, AUDITOR, &["--json", "status"]).await;
    ok(&out);
    assert_eq!(out.json()["last_reload"]["ok"], false, "{out:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_the_served_text_or_its_samples_as_json() {
    let h = Harness::start().await;
    h.apply(created("e1", "t1", "r1", "2026-02-01T00:00:00Z")).await;
    let head = h.audit().last().unwrap()["seq"].as_u64().unwrap();
    let out = ctl(&h, AUDITOR, &["metrics"]).await;
    ok(&out);
    assert!(out.stdout.contains("# TYPE retentiond_audit_head_seq gauge\n"), "{out:?}");
    assert!(out.stdout.lines().any(|l| l == format!("retentiond_audit_head_seq {head}")), "{out:?}");
    let served = out.stdout.lines().filter(|l| !l.is_empty() && !l.starts_with('#')).count();

    let out = ctl(&h, AUDITOR, &["--json", "metrics"]).await;
    ok(&out);
    let samples = out.json()["samples"].as_array().unwrap().clone();
    assert_eq!(samples.len(), served, "one JSON sample per served sample");
    assert!(samples.contains(&json!({"name": "retentiond_audit_head_seq", "labels": {}, "value": head})), "{out:?}");
    let created = json!({"name": "retentiond_events_total", "labels": {"type": "resource.created", "status": "applied"}, "value": 1});
    assert!(samples.contains(&created), "{out:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forecast_within_counts_from_the_daemons_clock_not_this_machines() {
    let h = Harness::start().await;
    // The manual clock runs years ahead of this machine's: a window counted
    // from this machine's clock would list nothing.
    h.set_clock("2040-01-01T00:00:00Z").await;
    let soon = retentiond::time::parse_rfc3339("2040-01-20T00:00:00Z").unwrap();
    assert!(chrono::Utc::now() + chrono::Duration::days(30) < soon, "this machine's clock is past 2039");
    h.apply(created("e1", "t1", "soon", "2040-01-05T00:00:00Z")).await; // deletion due 20 Jan 2040
    h.apply(created("e2", "t1", "later", "2040-02-10T00:00:00Z")).await; // due 25 Feb 2040

    let out = ctl(&h, AUDITOR, &["forecast", "--within", "30d"]).await;
    ok(&out);
    assert!(out.stdout.starts_with("deletions due before 2040-01-31T00:00:00Z:\n"), "{out:?}");
    assert!(out.has_row(&["2040-01-20T00:00:00Z", "soon", "t1", "active", "expiry", "yes", "-"]), "{out:?}");
    assert!(!out.stdout.contains("later"), "outside the window: {out:?}");
    let out = ctl(&h, AUDITOR, &["--json", "forecast", "--within", "30d"]).await;
    ok(&out);
    assert_eq!(out.json()["before"], "2040-01-31T00:00:00Z");
    assert_eq!(out.json()["deletions"].as_array().unwrap().len(), 1, "{out:?}");

    // A refused token is named, not taken for a daemon that cannot tell its clock.
    let out = ctl(&h, "not-a-known-token", &["forecast", "--within", "30d"]).await;
    assert_eq!(out.code, 1, "{out:?}");
    let want = "retentiond ctl: reading the daemon's clock from /readyz: token refused (401): unknown token";
    assert!(out.stderr.starts_with(want), "{out:?}");
    assert_eq!(out.stderr.lines().count(), 1, "{out:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hold_without_at_is_dated_by_the_daemons_clock() {
    let h = Harness::start().await;
    h.apply(created("e1", "t1", "r1", "2026-02-01T00:00:00Z")).await;
    let now = "2026-01-10T12:00:00Z";
    h.set_clock(now).await;
    // Dated by this machine's clock, the event would be months in the
    // future and rejected (max_future_skew is 5 minutes).
    let daemon_now = retentiond::time::parse_rfc3339(now).unwrap();
    assert!(chrono::Utc::now() > daemon_now + chrono::Duration::hours(1), "this machine's clock is behind 2026");

    let place = ["hold", "place", "--hold-id", "h1", "--authority", "A", "--reason", "R", "--tenant", "t1"];
    let out = ctl(&h, OPERATOR, &place).await;
    ok(&out);
    assert!(out.stdout.lines().any(|l| l.starts_with("ctl-hold-placed-h1-") && l.contains(" applied")), "{out:?}");
    assert_eq!(
        h.resource("r1").await["holds"],
        json!([{"hold_id": "h1", "authority": "A", "reason": "R", "scope": "tenant", "placed_at": now}])
    );
    let out = ctl(&h, OPERATOR, &["hold", "release", "--hold-id", "h1", "--tenant", "t1"]).await;
    ok(&out);
    assert_eq!(h.resource("r1").await["holds"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_policy_after_a_reload_lists_what_moved() {
    let config = |expiry: &str| {
        format!("{}\n[safety]\nmin_notice = \"2d\"\n", base_config("")).replacen(
            "expiry = \"15d\"",
            &format!("expiry = \"{expiry}\""),
            1,
        )
    };
    let h = Harness::with_config(&config("15d")).await;
    h.make_data("t1", "r1");
    h.apply(created("e1", "t1", "r1", "2026-01-31T00:00:00Z")).await;
    h.apply(created("e2", "t1", "r2", "2026-06-01T00:00:00Z")).await;
    h.set_clock("2026-02-01T00:00:00Z").await;
    assert_eq!(h.resource("r1").await["delete_after"], "2026-02-15T00:00:00Z");
    let old = policies(&h).await["ecs"].clone();

    // The expiry buffer shrinks from 15 to 5 days; the running buffer keeps
    // its deadline until the policy is applied.
    std::fs::write(h.config_path(), config("5d")).unwrap();
    h.daemon.as_ref().unwrap().reload().await.expect("reload accepted");
    let new = policies(&h).await["ecs"].as_str().unwrap().to_string();
    assert_ne!(json!(new), old);
    let out = ctl(&h, AUDITOR, &["status"]).await;
    assert_eq!(out.field("policies"), Some(format!("ecs {new}")));
    assert_eq!(out.field("last_reload").as_deref(), Some("ok at 2026-02-01T00:00:00Z: changed ecs"), "{out:?}");
    assert_eq!(h.resource("r1").await["delete_after"], "2026-02-15T00:00:00Z");

    let out = ctl(&h, INGEST, &["apply-policy", "ecs"]).await;
    assert_eq!(out.code, 1, "{out:?}");
    assert_eq!(out.stderr, "retentiond ctl: the token's role may not do this (403): role ingest may not do this\n");
    let out = ctl(&h, OPERATOR, &["apply-policy", "nosuch"]).await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.starts_with("retentiond ctl: bad request (400): field product: "), "{out:?}");
    assert!(out.stderr.contains("nosuch") && out.stderr.lines().count() == 1, "{out:?}");
    assert_eq!(out.stdout, "");

    // Term end 31 Jan + 5 days; the 2-day notice floor (3 Feb) is earlier.
    let out = ctl(&h, OPERATOR, &["apply-policy", "ecs"]).await;
    ok(&out);
    assert!(out.stdout.starts_with(&format!("product ecs, policy {new}: 1 rescheduled, 1 unchanged\n")), "{out:?}");
    assert!(out.has_row(&["RESOURCE", "FROM", "TO"]), "{out:?}");
    assert!(out.has_row(&["r1", "2026-02-15T00:00:00Z", "2026-02-05T00:00:00Z"]), "{out:?}");
    assert_eq!(h.resource("r1").await["delete_after"], "2026-02-05T00:00:00Z");
    // Nothing is left to move; --json is the daemon's answer.
    let out = ctl(&h, OPERATOR, &["--json", "apply-policy", "ecs"]).await;
    ok(&out);
    assert_eq!(out.json(), json!({"product": "ecs", "policy_version": new, "rescheduled": [], "unchanged": 2}));
}

/// `ctl status` shows a batch the mass-deletion guard holds, and `ctl
/// approve --batch DIGEST` releases exactly it (another digest: refused).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_shows_and_approve_releases_the_held_batch() {
    let h = Harness::start().await;
    let mut created = Vec::new();
    let mut releases = Vec::new();
    for i in 0..100 {
        let r = format!("r{i}");
        h.make_data("t1", &r);
        created.push(event(&format!("c{i}"), "resource.created", &r, json!({"product": "ecs", "billing": "postpaid"})));
        if i < 50 {
            releases.push(event(&format!("x{i}"), "resource.released", &r, json!({})));
        }
    }
    h.events(json!(created)).await;
    h.events(json!(releases)).await;
    let trip = h.audit().into_iter().find(|r| r["kind"] == "guard.tripped").expect("the guard tripped");
    let digest = trip["data"]["batch_digest"].as_str().unwrap().to_string();
    let out = ctl(&h, AUDITOR, &["status"]).await;
    ok(&out);
    assert!(out.stdout.contains(&format!("50 resources held since {T0} (digest {digest})")), "{out:?}");
    let out = ctl(&h, OPERATOR, &["approve", "--batch", "abc"]).await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("nothing was approved"), "{out:?}");
    let out = ctl(&h, OPERATOR, &["approve", "--batch", &digest]).await;
    ok(&out);
    assert_eq!(out.stdout, format!("approved: guard; released the held batch of 50 resources (digest {digest})\n"));
    h.advance("0s").await;
    assert!((0..50).all(|i| !h.data_path("t1", &format!("r{i}")).exists()));
}

/// Issue 9: the daemon caps a request at 1,000 events; ctl sends a file as
/// one request (all or nothing) and says in one line why it was refused.
#[tokio::test]
async fn a_file_over_the_batch_limit_is_refused_in_one_line_and_nothing_stored() {
    let h = Harness::start().await;
    let lines: Vec<String> = (0..1001)
        .map(|i| created(&format!("e{i}"), "t1", &format!("r{i}"), "2026-06-01T00:00:00Z").to_string())
        .collect();
    let out = ctl_in(&h, INGEST, &["events"], &lines.join("\n")).await;
    assert_eq!(out.code, 1, "{out:?}");
    assert_eq!(out.stderr.lines().count(), 1, "{out:?}");
    assert!(out.stderr.starts_with("retentiond ctl: request too large (413): 1001 events"), "{out:?}");
    assert!(out.stderr.contains("nothing of the request was stored"), "{out:?}");
    let (status, _) = h.get_as(AUDITOR, "/v1/resources/r0").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
