//! The console in a real browser (issue 13, part 8): headless Chromium
//! (Debian's `chromium`) logs in through the form as a person would, opens
//! each page, checks what it shows, and saves a screenshot of each under
//! `target/console-screenshots/`. Skipped, with a message, where
//! `chromium` is not installed (`.ci/run` installs it where it can).
//!
//! Chromium is driven over the DevTools protocol (a WebSocket, no driver
//! program): the test itself fills the form and submits it, so the login
//! is the browser's own POST, its cookie kept by the browser as any other.
//! The console's pages have no script; the test's `Runtime.evaluate` calls
//! are DevTools', outside the page's Content-Security-Policy.

mod common;

use base64::Engine as _;
use common::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The browser, killed on drop.
struct Browser(Child);

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Chromium's path, if installed.
fn chromium() -> Option<PathBuf> {
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"].into_iter().map(PathBuf::from).find(|p| p.exists())
}

/// Starts headless Chromium on a fresh profile and gives the DevTools
/// address it prints (`ws://127.0.0.1:PORT/devtools/browser/..`).
fn launch(exe: &Path, profile: &Path) -> (Browser, String) {
    let mut child = Command::new(exe)
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--remote-debugging-port=0"])
        .arg("--window-size=1280,900")
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("about:blank")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("chromium starts");
    let stderr = child.stderr.take().unwrap();
    let browser = Browser(child);
    let mut lines = std::io::BufReader::new(stderr).lines();
    let ws = loop {
        let line = lines.next().expect("chromium prints its DevTools address").unwrap();
        if let Some(rest) = line.strip_prefix("DevTools listening on ") {
            break rest.trim().to_string();
        }
    };
    // Keep reading its stderr so Chromium never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    (browser, ws)
}

/// One DevTools session on the browser's first page.
struct Page {
    socket: Socket,
    next_id: u64,
}

impl Page {
    async fn open(browser_ws: &str) -> Page {
        let http = browser_ws.trim_start_matches("ws://").split('/').next().unwrap().to_string();
        let targets: Vec<Value> = reqwest::get(format!("http://{http}/json/list")).await.unwrap().json().await.unwrap();
        let page = targets.iter().find(|t| t["type"] == "page").expect("a page target");
        let url = page["webSocketDebuggerUrl"].as_str().unwrap();
        let (socket, _) = tokio_tungstenite::connect_async(url).await.expect("DevTools WebSocket");
        let mut p = Page { socket, next_id: 0 };
        p.call("Page.enable", json!({})).await;
        p
    }

    /// Sends a command and gives its result, skipping the events between.
    async fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let msg = json!({"id": id, "method": method, "params": params}).to_string();
        self.socket.send(Message::text(msg)).await.unwrap();
        loop {
            let v = self.message().await;
            if v["id"] == id {
                assert!(v.get("error").is_none(), "{method}: {v}");
                return v["result"].clone();
            }
        }
    }

    async fn message(&mut self) -> Value {
        let next = tokio::time::timeout(Duration::from_secs(30), self.socket.next()).await;
        let msg = next.expect("Chromium answers within 30 s").expect("the socket is open").unwrap();
        serde_json::from_str(msg.to_text().unwrap()).unwrap()
    }

    /// Waits for the page's next `load` event.
    async fn loaded(&mut self) {
        while self.message().await["method"] != "Page.loadEventFired" {}
    }

    /// Opens `url` and waits until it has loaded.
    async fn goto(&mut self, url: &str) {
        let r = self.call("Page.navigate", json!({"url": url})).await;
        assert!(r.get("errorText").is_none(), "{url}: {r}");
        self.loaded().await;
    }

    /// Evaluates `expr` in the page (DevTools', not the page's, script).
    async fn eval(&mut self, expr: &str) -> Value {
        let r = self.call("Runtime.evaluate", json!({"expression": expr, "returnByValue": true})).await;
        r["result"]["value"].clone()
    }

    /// Saves a PNG of the whole page as `dir/name.png`.
    async fn screenshot(&mut self, dir: &Path, name: &str) {
        let r = self.call("Page.captureScreenshot", json!({"format": "png", "captureBeyondViewport": true})).await;
        let png = base64::engine::general_purpose::STANDARD.decode(r["data"].as_str().unwrap()).unwrap();
        assert!(png.starts_with(b"\x89PNG"), "{name}: not a PNG");
        std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
    }
}

/// Logs in through the form, opens every page, checks its text, and takes
/// its screenshot; then logs out through the button.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_logs_in_and_reads_every_page() {
    let Some(exe) = chromium() else {
        eprintln!("skipped: chromium is not installed (apt-get install chromium)");
        return;
    };
    let h = Harness::start().await;
    h.make_data("t1", "r1");
    h.apply(created("e1", "t1", "r1", "2026-02-01T00:00:00Z")).await;
    h.apply(created("e2", "t1", "r2", "2026-03-01T00:00:00Z")).await;
    h.apply_as(
        OPERATOR,
        json!({"event_id": "e3", "type": "hold.placed", "at": T0, "tenant": "t2", "hold_id": "h1",
               "authority": "court", "reason": "<b>case</b> 12"}),
    )
    .await;
    h.set_clock("2026-02-16T12:00:00Z").await;
    h.advance("1d").await;
    assert_eq!(h.resource("r1").await["state"], "purged");

    let shots = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/console-screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let profile = tempfile::tempdir().unwrap();
    let (_browser, ws) = launch(&exe, profile.path());
    let mut page = Page::open(&ws).await;

    page.goto(&format!("{}/console/", h.base)).await;
    assert_eq!(page.eval("location.pathname").await, "/console/login", "no session: the login form");
    page.screenshot(&shots, "login").await;
    page.eval(&format!("document.getElementById('token').value = '{AUDITOR}'; document.forms[0].submit()")).await;
    page.loaded().await;
    assert_eq!(page.eval("location.pathname").await, "/console/", "logged in: the overview");
    assert_eq!(page.eval("document.cookie").await, "", "the session cookie is HttpOnly");

    for (name, path, must) in [
        ("overview", "/console/", "Resources tracked"),
        ("forecast", "/console/forecast", "2026-03-16"),
        ("resource", "/console/resources/r1", "purged"),
        ("holds", "/console/holds", "<b>case</b> 12"),
        ("stuck", "/console/stuck", "No stuck copy"),
        ("certificate", "/console/certificates/r1", "Valid: "),
        ("audit", "/console/audit", "Verified: "),
    ] {
        page.goto(&format!("{}{path}", h.base)).await;
        assert_eq!(page.eval("location.pathname").await, path, "{name}: still logged in");
        let text = page.eval("document.body.innerText").await;
        let text = text.as_str().unwrap_or_default();
        assert!(text.contains(must), "{name} shows {must:?}: {text}");
        assert_eq!(page.eval("document.scripts.length").await, 0, "{name}: no script");
        page.screenshot(&shots, name).await;
    }
    let bold = page.eval("document.querySelectorAll('td b').length").await;
    assert_eq!(bold, 0, "a hold's reason is text, never markup");

    page.eval("document.querySelector('nav form').submit()").await;
    page.loaded().await;
    assert_eq!(page.eval("location.pathname").await, "/console/login", "logged out");
    page.goto(&format!("{}/console/holds", h.base)).await;
    assert_eq!(page.eval("location.pathname").await, "/console/login", "the session is over");
}
