//! A machine without a CA bundle (issue 9, point 10): `ctl`, the `http`
//! executor and the `http` notifier talk plain http to 127.0.0.1 without
//! one, and `check-config` says in advance when an `https://` URL cannot
//! work. `SSL_CERT_FILE` and `SSL_CERT_DIR` name an empty file and an empty
//! directory: rustls-native-certs then reads those instead of the system's
//! certificates, which is what a minimal system without /etc/ssl/certs
//! looks like to the binary.

mod common;

use axum::routing::post;
use common::*;
use serde_json::{json, Value};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// An empty CA file and directory; the environment that points at them.
struct NoCaBundle {
    dir: tempfile::TempDir,
}

impl NoCaBundle {
    fn new() -> NoCaBundle {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("none.pem"), "").unwrap();
        std::fs::create_dir(dir.path().join("certs")).unwrap();
        NoCaBundle { dir }
    }

    fn env(&self) -> [(&'static str, std::path::PathBuf); 2] {
        [("SSL_CERT_FILE", self.dir.path().join("none.pem")), ("SSL_CERT_DIR", self.dir.path().join("certs"))]
    }
}

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_retentiond"))
}

/// `retentiond ctl status` against the in-process daemon on
/// http://127.0.0.1, with no CA certificate to be found.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctl_talks_plain_http_without_a_ca_bundle() {
    let h = Harness::start().await;
    let none = NoCaBundle::new();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_retentiond"))
        .args(["ctl", "status"])
        .env("RETENTIOND_ADDR", &h.base)
        .env("RETENTIOND_TOKEN", AUDITOR)
        .env_remove("RETENTIOND_TOKEN_FILE")
        .envs(none.env())
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("ready"), "{}", String::from_utf8_lossy(&out.stdout));
}

/// A deletion service on 127.0.0.1 that answers 200 and counts its calls.
async fn deletion_service() -> (u16, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    let app = axum::Router::new().route(
        "/purge",
        post(move || {
            let counted = counted.clone();
            async move {
                counted.fetch_add(1, Ordering::SeqCst);
                "done"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (port, calls)
}

/// A config with a cache store deleted through an `http` executor at
/// `url`, and a product `remote` that uses it.
fn http_store_config(url: &str, port: u16) -> String {
    base_config(&format!(
        r#"
[stores.remote]
class = "cache"
executor = {{ kind = "http", url = "{url}", secret_env = "RETENTIOND_TEST_PURGE_KEY" }}

[products.remote]
stores = ["primary", "remote"]
buffer = {{ expiry = "1d", arrears = "1d", termination = "1d" }}
"#
    ))
    .replace("127.0.0.1:0", &format!("127.0.0.1:{port}"))
}

/// The real daemon, without any CA certificate, deletes through an `http`
/// executor on http://127.0.0.1: the copy is gone and the resource purged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_http_executor_works_on_plain_http_without_a_ca_bundle() {
    let (service_port, calls) = deletion_service().await;
    let dir = tempfile::tempdir().unwrap();
    fs_root(&dir.path().join("data"));
    write_tokens(dir.path());
    let port = free_port();
    let config = dir.path().join("retentiond.toml");
    std::fs::write(&config, http_store_config(&format!("http://127.0.0.1:{service_port}/purge"), port)).unwrap();
    let none = NoCaBundle::new();
    let child = bin()
        .args(["serve", "--config"])
        .arg(&config)
        .env("RUST_LOG", "warn")
        .env("RETENTIOND_TEST_PURGE_KEY", "test-secret")
        .envs(none.env())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let d = Served::wait_healthy(child, format!("http://127.0.0.1:{port}")).await;
    let client = reqwest::Client::new();
    let post = |token: &str, path: &str, body: Value| {
        client.post(format!("{}{path}", d.base)).bearer_auth(token).json(&body).send()
    };
    let ev = json!({"event_id": "e1", "type": "resource.released", "at": T0, "tenant": "t1", "resource": "r1"});
    let created = json!({"event_id": "c1", "type": "resource.created", "at": T0, "tenant": "t1", "resource": "r1",
                         "product": "remote", "billing": "postpaid"});
    for body in [created, ev] {
        let r = post(INGEST, "/v1/events", body).await.unwrap();
        assert_eq!(r.status(), 200);
    }
    let r = post(ADMIN, "/v1/admin/clock", json!({"advance": "1s"})).await.unwrap();
    assert_eq!(r.status(), 200);
    let r: Value = client
        .get(format!("{}/v1/resources/r1", d.base))
        .bearer_auth(AUDITOR)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["state"], "purged", "{r}");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

fn check_config(config: &Path, env: &[(&'static str, std::path::PathBuf)]) -> (i32, String) {
    let out =
        bin().args(["check-config", "--config"]).arg(config).envs(env.iter().map(|(k, v)| (*k, v))).output().unwrap();
    (out.status.code().unwrap(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// `check-config` warns (exit still 0: the file is valid, the machine
/// lacks something) when an `https://` executor or notifier cannot work
/// here, naming it; a plain-http one needs nothing.
#[test]
fn check_config_names_an_https_url_that_cannot_work_here() {
    let dir = tempfile::tempdir().unwrap();
    write_tokens(dir.path());
    let config = dir.path().join("retentiond.toml");
    let none = NoCaBundle::new();

    std::fs::write(&config, http_store_config("http://127.0.0.1:9/purge", 7300)).unwrap();
    assert_eq!(check_config(&config, &none.env()), (0, String::new()));

    let notifier = "\n[notifier]\nkind = \"http\"\nurl = \"https://notify.example/v1/notices\"\nsecret_env = \"K\"\n";
    let text = http_store_config("https://purge.example/purge", 7300) + notifier;
    std::fs::write(&config, text).unwrap();
    let (code, stderr) = check_config(&config, &none.env());
    assert_eq!(code, 0, "{stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 2, "{stderr}");
    assert!(lines[0].starts_with("warning: ") && lines[0].contains("stores.remote.executor: "), "{stderr}");
    assert!(lines[0].contains("https://purge.example/purge") && lines[0].contains("CA"), "{stderr}");
    assert!(lines[1].contains("notifier: ") && lines[1].contains("https://notify.example"), "{stderr}");
}
