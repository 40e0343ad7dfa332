//! Test harness: the daemon in-process on a temporary state dir, with a
//! manual clock moved through the API. No test sleeps for a deadline.
#![allow(dead_code)]

use reqwest::StatusCode;
use retentiond::auth::hash_token;
use retentiond::daemon::Daemon;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

pub const ADMIN: &str = "test-admin-token";
pub const INGEST: &str = "test-ingest-token";
pub const AUDITOR: &str = "test-auditor-token";
pub const OPERATOR: &str = "test-operator-token";

/// The clock reading every test starts at.
pub const T0: &str = "2026-01-01T00:00:00Z";

/// A config with one online fs store under `<dir>/data` (the harness creates
/// it with its marker) and product `ecs`
/// with a 15-day buffer; `extra` is appended (more stores, products, keys).
pub fn base_config(extra: &str) -> String {
    format!(
        r#"
[daemon]
state_dir = "state"

[clock]
source = "manual"
start = "{T0}"

[api]
listen = "127.0.0.1:0"
tokens_file = "tokens.toml"

[stores.primary]
class = "online"
executor = {{ kind = "fs", root = "data", path = "{{tenant}}/{{resource}}" }}

[products.ecs]
stores = ["primary"]
buffer = {{ expiry = "15d", arrears = "15d", termination = "15d", violation = "0s" }}
{extra}
"#
    )
}

/// The `fs` executor's default marker file name.
pub const MARKER: &str = ".retentiond-root";

/// Creates `path` as an `fs` store root, marker included, as an operator
/// does on the mounted volume (without the marker every deletion fails).
pub fn fs_root(path: &Path) -> PathBuf {
    std::fs::create_dir_all(path).unwrap();
    std::fs::write(path.join(MARKER), b"").unwrap();
    path.to_path_buf()
}

pub fn write_tokens(dir: &Path) {
    let mut s = String::new();
    for (name, role, token) in [
        ("admin", "admin", ADMIN),
        ("billing", "ingest", INGEST),
        ("audit", "auditor", AUDITOR),
        ("ops", "operator", OPERATOR),
    ] {
        s.push_str(&format!("[[token]]\nname = \"{name}\"\nrole = \"{role}\"\nsha256 = \"{}\"\n", hash_token(token)));
    }
    std::fs::write(dir.join("tokens.toml"), s).unwrap();
}

pub struct Harness {
    pub dir: tempfile::TempDir,
    pub daemon: Option<Daemon>,
    /// The real binary, when started with [`Harness::binary`]: then
    /// `daemon` stays `None` and every helper goes through its port.
    pub served: Option<Served>,
    /// True for a harness on the real binary (restarts spawn it again).
    pub binary: bool,
    pub base: String,
    pub client: reqwest::Client,
}

impl Harness {
    pub async fn start() -> Harness {
        Self::with_config(&base_config("")).await
    }

    pub async fn with_config(config_text: &str) -> Harness {
        Self::prepared(config_text, false).await
    }

    /// The same harness on the real binary: `retentiond serve` run as its
    /// own process on a free port (`127.0.0.1:0` in the config is replaced
    /// by it), so what `main` wires is under test too; killed on drop.
    pub async fn binary(config_text: &str) -> Harness {
        Self::prepared(config_text, true).await
    }

    async fn prepared(config_text: &str, binary: bool) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        fs_root(&dir.path().join("data"));
        std::fs::write(dir.path().join("retentiond.toml"), config_text).unwrap();
        write_tokens(dir.path());
        let mut h =
            Harness { dir, daemon: None, served: None, binary, base: String::new(), client: reqwest::Client::new() };
        h.boot().await;
        h
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("retentiond.toml")
    }

    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    async fn boot(&mut self) {
        if self.binary {
            return self.serve().await;
        }
        let config = retentiond::config::load(&self.config_path()).expect("test config is valid");
        // Other tests in this process spawn executor and notifier programs:
        // a child between fork and exec briefly holds a copy of every open
        // file, the previous daemon's database lock included. Wait that
        // out (a real restart is a new process and never meets it).
        let mut tries = 0;
        let daemon = loop {
            match Daemon::start(config.clone()).await {
                Err(e) if tries < 250 && e.to_string().contains("could not acquire lock") => {
                    tries += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
                other => break other.expect("daemon starts"),
            }
        };
        self.base = format!("http://{}", daemon.addr);
        self.daemon = Some(daemon);
    }

    /// Stops the daemon cleanly and starts it again on the same state.
    pub async fn restart(&mut self) {
        self.stop().await;
        self.boot().await;
    }

    pub async fn stop(&mut self) {
        if let Some(d) = self.daemon.take() {
            d.shutdown().await.expect("clean shutdown");
        }
        if let Some(mut s) = self.served.take() {
            s.signal("TERM");
            assert_eq!(s.exit_code(std::time::Duration::from_secs(30)), Some(0), "clean shutdown");
        }
    }

    /// Starts `retentiond serve` on the config file: on a free port the
    /// first time, on the same one after a restart.
    async fn serve(&mut self) {
        let text = std::fs::read_to_string(self.config_path()).unwrap();
        let any_port = "\"127.0.0.1:0\"";
        if text.contains(any_port) {
            let port = format!("\"127.0.0.1:{}\"", free_port());
            std::fs::write(self.config_path(), text.replace(any_port, &port)).unwrap();
        }
        let addr = retentiond::config::load(&self.config_path()).expect("test config is valid").api.listen;
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_retentiond"))
            .args(["serve", "--config"])
            .arg(self.config_path())
            .env("RUST_LOG", "error")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .unwrap();
        self.base = format!("http://{addr}");
        self.served = Some(Served::wait_healthy(child, self.base.clone()).await);
    }

    /// After the real binary died on its own (a crash the test caused):
    /// waits for its exit, then serves again on the same state, as a
    /// supervisor restarting it does. Returns its exit code (`None`: killed
    /// by a signal).
    pub async fn restart_after_crash(&mut self) -> Option<i32> {
        let mut s = self.served.take().expect("the real binary is served");
        let code = s.exit_code(std::time::Duration::from_secs(30));
        self.boot().await;
        code
    }

    /// Starts again after `stop`, with a new config text.
    pub async fn start_with(&mut self, config_text: &str) {
        std::fs::write(self.config_path(), config_text).unwrap();
        self.boot().await;
    }

    /// Creates `data/<tenant>/<resource>/blob` as the tenant's business data.
    pub fn make_data(&self, tenant: &str, resource: &str) -> PathBuf {
        let p = self.dir.path().join("data").join(tenant).join(resource);
        std::fs::create_dir_all(&p).unwrap();
        std::fs::write(p.join("blob"), b"customer business data").unwrap();
        p
    }

    pub fn data_path(&self, tenant: &str, resource: &str) -> PathBuf {
        self.dir.path().join("data").join(tenant).join(resource)
    }

    pub async fn post_as(&self, token: &str, path: &str, body: &Value) -> (StatusCode, Value) {
        let resp = self.client.post(format!("{}{path}", self.base)).bearer_auth(token).json(body).send().await.unwrap();
        let status = resp.status();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    pub async fn get_as(&self, token: &str, path: &str) -> (StatusCode, Value) {
        let resp = self.client.get(format!("{}{path}", self.base)).bearer_auth(token).send().await.unwrap();
        let status = resp.status();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// Posts `body` as is, with `content_type` if given (to send what a
    /// careless client sends: not JSON, the wrong type, no type).
    pub async fn post_raw(
        &self,
        token: &str,
        path: &str,
        content_type: Option<&str>,
        body: &str,
    ) -> (StatusCode, Value) {
        let mut req = self.client.post(format!("{}{path}", self.base)).bearer_auth(token).body(body.to_string());
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// A GET whose answer is text (`/metrics`).
    pub async fn get_text(&self, token: &str, path: &str) -> (StatusCode, String) {
        let resp = self.client.get(format!("{}{path}", self.base)).bearer_auth(token).send().await.unwrap();
        let status = resp.status();
        (status, resp.text().await.unwrap_or_default())
    }

    /// Posts events as the billing feed; asserts 200 and returns the results.
    pub async fn events(&self, body: Value) -> Vec<Value> {
        let (status, v) = self.post_as(INGEST, "/v1/events", &body).await;
        assert_eq!(status, StatusCode::OK, "{v}");
        v["results"].as_array().unwrap().clone()
    }

    /// Posts one event with another role's token and asserts it was applied.
    pub async fn apply_as(&self, token: &str, body: Value) {
        let (status, v) = self.post_as(token, "/v1/events", &body).await;
        assert_eq!(status, StatusCode::OK, "{v}");
        assert_eq!(v["results"][0]["status"], "applied", "{v}");
    }

    /// Posts one event and asserts it was applied.
    pub async fn apply(&self, body: Value) {
        let r = self.events(body).await;
        assert_eq!(r[0]["status"], "applied", "{r:?}");
    }

    /// Moves the manual clock forward; returns once due work has run.
    pub async fn advance(&self, by: &str) -> String {
        let (status, v) = self.post_as(ADMIN, "/v1/admin/clock", &json!({ "advance": by })).await;
        assert_eq!(status, StatusCode::OK, "{v}");
        v["now"].as_str().unwrap().to_string()
    }

    /// Lets time pass until the clock reads `to` (an advance, so wall and
    /// monotonic readings move together: not a clock jump).
    pub async fn set_clock(&self, to: &str) -> String {
        let now = retentiond::time::parse_rfc3339(&self.advance("0s").await).unwrap();
        let to_t = retentiond::time::parse_rfc3339(to).unwrap();
        let ms = (to_t - now).num_milliseconds();
        assert!(ms >= 0, "set_clock moves forward only; use jump_clock");
        self.advance(&format!("{ms}ms")).await
    }

    /// Sets the wall reading alone, as someone setting the machine's clock.
    pub async fn jump_clock(&self, to: &str) -> String {
        let (status, v) = self.post_as(ADMIN, "/v1/admin/clock", &json!({ "set": to })).await;
        assert_eq!(status, StatusCode::OK, "{v}");
        v["now"].as_str().unwrap().to_string()
    }

    pub async fn resource(&self, id: &str) -> Value {
        let (status, v) = self.get_as(AUDITOR, &format!("/v1/resources/{id}")).await;
        assert_eq!(status, StatusCode::OK, "{v}");
        v
    }

    /// Every audit record in the log file, in order.
    pub fn audit(&self) -> Vec<Value> {
        read_jsonl(&self.state_dir().join("audit.jsonl"))
    }

    /// Audit records of one kind about one resource.
    pub fn audit_of(&self, kind: &str, resource: &str) -> Vec<Value> {
        self.audit().into_iter().filter(|r| r["kind"] == kind && r["resource"] == resource).collect()
    }

    /// Runs the offline verifier on the audit log and asserts it passes.
    pub fn verify_audit(&self) -> u64 {
        let report = retentiond::audit::verify(&self.state_dir(), None).unwrap_or_else(|f| panic!("audit verify: {f}"));
        report.records
    }
}

/// Every line of a JSON Lines file (none if it does not exist yet).
pub fn read_jsonl(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// Writes an executable `/bin/sh` script `name` into `dir`.
pub fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    p
}

pub fn created(event_id: &str, tenant: &str, resource: &str, term_end: &str) -> Value {
    json!({"event_id": event_id, "type": "resource.created", "at": T0, "tenant": tenant,
           "resource": resource, "product": "ecs", "billing": "prepaid", "term_end": term_end})
}

/// A free TCP port on loopback, for a daemon run as its own process.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The real binary, serving; killed on drop, so a failing test never leaves
/// a daemon running (it would also hold the test's output pipes open).
pub struct Served {
    pub child: std::process::Child,
    pub base: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Served {
    /// Waits (bounded, 30 s) until `/healthz` answers at `base`.
    pub async fn wait_healthy(child: std::process::Child, base: String) -> Served {
        let served = Served { child, base };
        let client = reqwest::Client::new();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while !client.get(format!("{}/healthz", served.base)).send().await.is_ok_and(|r| r.status().is_success()) {
            assert!(std::time::Instant::now() < deadline, "daemon did not start");
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        served
    }

    /// Sends a signal by name (`HUP`, `TERM`) through kill(1).
    pub fn signal(&self, name: &str) {
        let pid = self.child.id().to_string();
        let ok = std::process::Command::new("kill").args([&format!("-{name}"), &pid]).status().unwrap();
        assert!(ok.success(), "kill -{name}");
    }

    /// Waits (bounded) for the process to exit; returns its exit code.
    pub fn exit_code(&mut self, within: std::time::Duration) -> Option<i32> {
        let deadline = std::time::Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            assert!(std::time::Instant::now() < deadline, "the daemon did not exit within {within:?}");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}

/// The config of a test that runs the engine itself (no daemon, no API):
/// state under `<dir>/state`, one online `fs` store `primary` at
/// `<dir>/data` (created here with its marker), product `ecs` with 15-day
/// buffers, the manual clock at [`T0`]; `extra` (whole tables) appended.
pub fn engine_config(dir: &Path, extra: &str) -> std::sync::Arc<retentiond::config::Config> {
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join(".retentiond-root"), "").unwrap();
    let text = format!(
        r#"
[daemon]
state_dir = "{state}"

[clock]
source = "manual"
start = "{T0}"

[stores.primary]
class = "online"
executor = {{ kind = "fs", root = "{data}", path = "{{tenant}}/{{resource}}" }}

[products.ecs]
stores = ["primary"]
buffer = {{ expiry = "15d", arrears = "15d", termination = "15d", violation = "0s" }}
{extra}"#,
        state = dir.join("state").display(),
        data = data.display(),
    );
    let config = retentiond::config::parse(&dir.join("retentiond.toml"), &text).unwrap();
    std::fs::create_dir_all(&config.daemon.state_dir).unwrap();
    std::sync::Arc::new(config)
}
