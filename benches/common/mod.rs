//! What the benchmarks share: the machine's description, a daemon run as a
//! child process (the real binary, so its memory, disk and start-up are its
//! own), posting events, and the report that prints figures and, with
//! `BENCH_RECORD=1`, appends them to `docs/benchmarks.md`.
//!
//! Benchmarks report figures and assert nothing (issue 11: performance is
//! measured, never asserted in a test).
#![allow(dead_code)] // each bench binary uses a part of this module

pub mod peer;

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The admin token every benchmark daemon accepts (admin may post events,
/// read everything and move a manual clock).
pub const TOKEN: &str = "bench-token";

/// A manual clock at 2026-01-01 (for [`config_text`]'s clock): no
/// deadline fires while a bench that does not want it runs.
pub const MANUAL_CLOCK: &str = "source = \"manual\"\nstart = \"2026-01-01T00:00:00Z\"";

/// The product's 15-day buffers (for [`config_text`]'s product).
pub const BUFFERS_15D: &str = "buffer = { expiry = \"15d\", arrears = \"15d\", termination = \"15d\" }";

/// A number from the environment, or the default.
pub fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// A list of numbers from the environment (`10000,100000`), or the default.
pub fn env_list(name: &str, default: &[usize]) -> Vec<usize> {
    match std::env::var(name) {
        Ok(v) => v.split(',').filter_map(|x| x.trim().parse().ok()).collect(),
        Err(_) => default.to_vec(),
    }
}

/// `cargo bench` passes `--bench`; `cargo test --benches` does not: then
/// every benchmark runs a small smoke version of itself.
pub fn quick() -> bool {
    !std::env::args().any(|a| a == "--bench")
}

/// The date, the commit, the CPU count and the load average when a run
/// started and ended: a figure means something only next to these.
pub struct Machine {
    started: String,
    load_before: String,
    commit: String,
}

impl Machine {
    /// Reads the machine's state at the start of a run.
    pub fn now() -> Machine {
        let commit = std::process::Command::new("git")
            .args(["rev-parse", "--short", "HEAD"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_else(|| "unknown".into());
        Machine { started: chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string(), load_before: load(), commit }
    }

    /// One line: when, which commit, cores, memory and load before and now.
    pub fn describe(&self) -> String {
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
        let mem = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| {
                m.lines().next().and_then(|l| l.split_whitespace().nth(1)).and_then(|k| k.parse::<u64>().ok())
            })
            .map(|kib| format!("{} GiB", kib / 1024 / 1024))
            .unwrap_or_default();
        let mut build =
            if cfg!(debug_assertions) { "debug build (a smoke run, not a figure)" } else { "release build" }
                .to_string();
        if let Some(bin) = std::env::var_os("BENCH_BIN") {
            build = format!("{build}, daemon binary {}", std::path::Path::new(&bin).display());
        }
        format!(
            "{}, commit {}, {cores} cores, {mem}, {build}; load average {} at start, {} at end",
            self.started,
            self.commit,
            self.load_before,
            load()
        )
    }
}

/// The 1-minute load average.
fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".into())
}

/// Figures of one benchmark, printed as a markdown section and, with
/// `BENCH_RECORD=1`, appended to `docs/benchmarks.md`.
pub struct Report {
    title: String,
    machine: Machine,
    command: String,
    header: Vec<String>,
    rows: Vec<Vec<String>>,
    notes: Vec<String>,
}

impl Report {
    /// A report titled `title`, for the command that reproduces it.
    pub fn new(title: &str, header: &[&str]) -> Report {
        let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
        let vars: Vec<String> =
            std::env::vars().filter(|(k, _)| k.starts_with("BENCH_")).map(|(k, v)| format!("{k}={v}")).collect();
        let bench = std::env::args()
            .next()
            .and_then(|p| Path::new(&p).file_name().map(|f| f.to_string_lossy().to_string()))
            .map(|f| f.rsplit_once('-').map(|(n, _)| n.to_string()).unwrap_or(f))
            .unwrap_or_default();
        let mut command = vars.join(" ");
        if !command.is_empty() {
            command.push(' ');
        }
        command.push_str(&format!("cargo bench --bench {bench}"));
        if !args.is_empty() {
            command.push_str(&format!(" -- {}", args.join(" ")));
        }
        Report {
            title: title.into(),
            machine: Machine::now(),
            command,
            header: header.iter().map(|s| s.to_string()).collect(),
            rows: Vec::new(),
            notes: Vec::new(),
        }
    }

    /// Adds a row (and prints it at once, so a long run shows progress).
    pub fn row(&mut self, cells: Vec<String>) {
        println!("  {}", cells.join(" | "));
        self.rows.push(cells);
    }

    /// Adds a line of text under the table.
    pub fn note(&mut self, text: String) {
        println!("  {text}");
        self.notes.push(text);
    }

    /// Prints the section; appends it to docs/benchmarks.md with BENCH_RECORD=1.
    pub fn finish(self) {
        let mut s = format!(
            "\n### {}: {}\n\n    {}\n\n{}\n\n",
            self.machine.started,
            self.title,
            self.command,
            self.machine.describe()
        );
        s.push_str(&format!("| {} |\n|{}\n", self.header.join(" | "), "---|".repeat(self.header.len())));
        for r in &self.rows {
            s.push_str(&format!("| {} |\n", r.join(" | ")));
        }
        for n in &self.notes {
            s.push_str(&format!("\n{n}\n"));
        }
        println!("{s}");
        if std::env::var("BENCH_RECORD").is_ok_and(|v| v == "1") {
            let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/benchmarks.md");
            let mut text = std::fs::read_to_string(&path).unwrap_or_default();
            text.push_str(&s);
            std::fs::write(&path, text).expect("docs/benchmarks.md is writable");
            println!("(appended to {})", path.display());
        }
    }
}

/// A rate with thousands separators: 12,345/s.
pub fn per_s(count: usize, elapsed: Duration) -> String {
    format!("{}/s", thousands((count as f64 / elapsed.as_secs_f64()).round() as u64))
}

/// 1234567 as "1,234,567".
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A ratio "0.52" of ours to the peer's, or "-" when the peer was skipped.
pub fn ratio(ours: f64, peer: Option<f64>) -> String {
    peer.map(|p| format!("{:.3}", ours / p)).unwrap_or_else(|| "-".into())
}

/// A milliseconds figure.
pub fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// The p-th percentile (0..=100) of sorted values.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() - 1) as f64 * p / 100.0).round() as usize;
    sorted[i]
}

/// The config every benchmark daemon starts from: one online fs store whose
/// root holds its marker and none of the resources' paths (so a deletion is
/// a real executor call that finds nothing to remove: the no-op executor),
/// no notices, `daemon`, `clock`, `safety` and `product` keys added to
/// their sections and `extra` appended (sections the bench needs).
pub fn config_text(port: u16, daemon: &str, clock: &str, safety: &str, product: &str, extra: &str) -> String {
    format!(
        r#"
[daemon]
state_dir = "state"
{daemon}
[clock]
{clock}
[api]
listen = "127.0.0.1:{port}"
tokens_file = "tokens.toml"
max_connections = 4096
[safety]
{safety}
[stores.primary]
class = "online"
executor = {{ kind = "fs", root = "data", path = "{{tenant}}/{{resource}}" }}
[products.ecs]
stores = ["primary"]
{product}
renewal_reminder = []
{extra}
"#
    )
}

/// A daemon run as a child process from the binary cargo built with the
/// bench, in a temporary directory it owns.
pub struct ChildDaemon {
    /// The temporary directory: config, tokens, `state/`, `data/`.
    pub dir: tempfile::TempDir,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    port: u16,
    child: Option<std::process::Child>,
}

/// The daemon binary under test: this build's, or the one `BENCH_BIN`
/// names (another build, so a before and an after run alternate in one
/// sitting against the same peer).
pub fn binary() -> std::path::PathBuf {
    match std::env::var_os("BENCH_BIN") {
        Some(p) => p.into(),
        None => env!("CARGO_BIN_EXE_retentiond").into(),
    }
}

/// A free local port (bound, read, released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl ChildDaemon {
    /// Writes `config` (made by [`config_text`] with this port) and the
    /// tokens file into a new temporary directory (under TMPDIR: set it to
    /// measure another disk). Not started yet.
    pub fn prepare(make_config: impl FnOnce(u16) -> String) -> ChildDaemon {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        std::fs::write(
            dir.path().join("tokens.toml"),
            format!(
                "[[token]]\nname = \"bench\"\nrole = \"admin\"\nsha256 = \"{}\"\n",
                retentiond::auth::hash_token(TOKEN)
            ),
        )
        .unwrap();
        std::fs::create_dir_all(dir.path().join("data")).unwrap();
        std::fs::write(dir.path().join("data/.retentiond-root"), b"").unwrap();
        std::fs::write(dir.path().join("retentiond.toml"), make_config(port)).unwrap();
        ChildDaemon { dir, base: format!("http://127.0.0.1:{port}"), port, child: None }
    }

    /// Starts `retentiond serve` and returns how long it took until
    /// `/readyz` answered 200.
    pub async fn start(&mut self, client: &reqwest::Client) -> Duration {
        let started = Instant::now();
        let child = std::process::Command::new(binary())
            .args(["serve", "--config"])
            .arg(self.dir.path().join("retentiond.toml"))
            // Errors, and the ready line with how long each stage of the
            // start took (the database's open, the engine's, the catch-up).
            .env("RUST_LOG", "error,retentiond::daemon=info")
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("the retentiond binary starts");
        self.child = Some(child);
        loop {
            if let Ok(r) = client.get(format!("{}/readyz", self.base)).bearer_auth(TOKEN).send().await {
                if r.status().is_success() {
                    return started.elapsed();
                }
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                panic!("retentiond exited before it was ready: {status}");
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Stops the daemon with SIGTERM and waits for it to exit.
    pub fn stop(&mut self) -> Duration {
        let started = Instant::now();
        if let Some(mut child) = self.child.take() {
            if let Some(pid) = rustix::process::Pid::from_raw(child.id() as i32) {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
            }
            let _ = child.wait();
        }
        started.elapsed()
    }

    /// Resident memory now and at its peak (VmRSS, VmHWM), in MiB.
    pub fn rss_mib(&self) -> (f64, f64) {
        let pid = self.child.as_ref().map(|c| c.id()).unwrap_or(0);
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|k| k.parse::<f64>().ok())
                .map(|kib| kib / 1024.0)
                .unwrap_or(0.0)
        };
        (field("VmRSS:"), field("VmHWM:"))
    }

    /// The state directory.
    pub fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// Bytes on disk under the state directory: (database, audit log).
    pub fn disk_bytes(&self) -> (u64, u64) {
        let mut db = 0;
        let mut audit = 0;
        let mut stack = vec![self.state()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
                let meta = e.metadata().unwrap();
                if meta.is_dir() {
                    stack.push(e.path());
                } else if e.file_name().to_string_lossy().starts_with("audit") {
                    audit += meta.len();
                } else {
                    db += meta.len();
                }
            }
        }
        (db, audit)
    }

    /// The port the daemon listens on.
    pub fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for ChildDaemon {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Posts events `make(0..total)` from `clients` concurrent clients, `batch`
/// per request (1: a single object), each answered only once durable;
/// returns the elapsed time.
pub async fn post_all(
    base: &str,
    client: &reqwest::Client,
    total: usize,
    batch: usize,
    clients: usize,
    make: impl Fn(usize) -> Value + Send + Sync + 'static,
) -> Duration {
    let make = Arc::new(make);
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (next, client, url, make) = (next.clone(), client.clone(), format!("{base}/v1/events"), make.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let first = next.fetch_add(batch, Ordering::Relaxed);
                if first >= total {
                    break;
                }
                let body = if batch == 1 {
                    make(first)
                } else {
                    Value::Array((first..(first + batch).min(total)).map(|i| make(i)).collect())
                };
                let resp = client.post(&url).bearer_auth(TOKEN).json(&body).send().await.unwrap();
                assert!(resp.status().is_success(), "{}", resp.status());
                let _ = resp.bytes().await;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    start.elapsed()
}

/// An HTTP client sized for `clients` concurrent connections.
pub fn client(clients: usize) -> reqwest::Client {
    reqwest::Client::builder().pool_max_idle_per_host(clients).build().unwrap()
}
