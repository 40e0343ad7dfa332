//! The real binary with TLS: `serve` over https and a SIGHUP that renews
//! its certificate, `ctl` with `--ca-file` and a client certificate (flags
//! and variables), `check-config` showing the TLS settings and refusing bad
//! files at the key that names them, and the warning for plain HTTP off
//! loopback (at `check-config` and in the log at start).

use crate::common::*;
use crate::pki::{client, served_certificate, Ca, Issued};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_retentiond"))
}

/// A config directory with tokens, an fs root and `retentiond.toml`
/// listening on `listen` with the `[api]` keys `api`.
fn config_dir(listen: &str, api: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    fs_root(&dir.path().join("data"));
    write_tokens(dir.path());
    let text = base_config("").replacen(
        "listen = \"127.0.0.1:0\"\ntokens_file = \"tokens.toml\"",
        &format!("listen = \"{listen}\"\ntokens_file = \"tokens.toml\"\n{api}"),
        1,
    );
    let path = dir.path().join("retentiond.toml");
    std::fs::write(&path, text).unwrap();
    (dir, path)
}

fn tls_keys(server: &Issued) -> String {
    format!("tls_cert_file = {:?}\ntls_key_file = {:?}", server.cert, server.key)
}

fn check_config(path: &Path) -> (i32, String, String) {
    let out = bin().args(["check-config", "--config"]).arg(path).output().unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.code().unwrap(), text(&out.stdout), text(&out.stderr))
}

/// `PATH:LINE:COL` of the value of `key` in the config file at `path`.
fn position_of(path: &Path, key: &str) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    let (n, line) = text.lines().enumerate().find(|(_, l)| l.starts_with(&format!("{key} ="))).unwrap();
    format!("{}:{}:{}", path.display(), n + 1, line.find('=').unwrap() + 3)
}

/// Waits (bounded) until `/healthz` answers over https with `client`.
async fn wait_healthy(child: std::process::Child, base: String, client: &reqwest::Client) -> Served {
    let served = Served { child, base };
    let deadline = Instant::now() + Duration::from_secs(30);
    while !client.get(format!("{}/healthz", served.base)).send().await.is_ok_and(|r| r.status().is_success()) {
        assert!(Instant::now() < deadline, "daemon did not start");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    served
}

async fn ctl(args: &[&str], env: &[(&str, &Path)]) -> Output {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_retentiond"));
    cmd.arg("ctl").args(args).env("RETENTIOND_TOKEN", AUDITOR).env_remove("RETENTIOND_TOKEN_FILE");
    for v in ["RETENTIOND_ADDR", "RETENTIOND_CA_FILE", "RETENTIOND_CLIENT_CERT", "RETENTIOND_CLIENT_KEY"] {
        cmd.env_remove(v);
    }
    cmd.envs(env.iter().map(|(k, v)| (k, v))).stdin(Stdio::null()).output().await.unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `serve` with required client certificates: `ctl status` works with
/// `--ca-file` and the client certificate, as flags or as variables;
/// without the CA, without the certificate, with an `http://` address or
/// `--ca-file` on one, it fails and says what to change. SIGHUP then
/// renews the certificate served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctl_speaks_https_to_the_binary_and_sighup_renews_its_certificate() {
    let pki_dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("ctl CA");
    let server = ca.server(pki_dir.path(), "server");
    let operator = ca.client(pki_dir.path(), "operator");
    let ca_file = ca.write(pki_dir.path(), "ca.pem");
    let port = free_port();
    let api = format!("{}\ntls_client_ca_file = {ca_file:?}", tls_keys(&server));
    let (_dir, config) = config_dir(&format!("127.0.0.1:{port}"), &api);
    let child = bin()
        .args(["serve", "--config"])
        .arg(&config)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let base = format!("https://127.0.0.1:{port}");
    let https = client(&ca, Some(&operator));
    let d = wait_healthy(child, base.clone(), &https).await;

    let (cert, key) = (operator.cert.to_str().unwrap(), operator.key.to_str().unwrap());
    let ca_arg = ca_file.to_str().unwrap();
    let out =
        ctl(&["status", "--addr", &base, "--ca-file", ca_arg, "--client-cert", cert, "--client-key", key], &[]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("ready"));
    let env = [
        ("RETENTIOND_ADDR", Path::new(&base)),
        ("RETENTIOND_CA_FILE", ca_file.as_path()),
        ("RETENTIOND_CLIENT_CERT", operator.cert.as_path()),
        ("RETENTIOND_CLIENT_KEY", operator.key.as_path()),
    ];
    let out = ctl(&["status"], &env).await;
    assert_eq!(out.status.code(), Some(0), "the variables: {}", stderr(&out));

    let out = ctl(&["status", "--addr", &base, "--client-cert", cert, "--client-key", key], &[]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("TLS with") && stderr(&out).contains("--ca-file"), "{}", stderr(&out));
    let out = ctl(&["status", "--addr", &base, "--ca-file", ca_arg], &[]).await;
    assert_eq!(out.status.code(), Some(1), "no client certificate: {}", stderr(&out));
    let plain = format!("http://127.0.0.1:{port}");
    let out = ctl(&["status", "--addr", &plain], &[]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("use https://"), "{}", stderr(&out));
    let out = ctl(&["status", "--addr", &plain, "--ca-file", ca_arg], &[]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("are for an https:// address"), "{}", stderr(&out));
    let out = ctl(&["status", "--addr", &base, "--ca-file", ca_arg, "--client-cert", cert], &[]).await;
    assert_eq!(out.status.code(), Some(2), "a certificate without its key is bad usage: {}", stderr(&out));

    // SIGHUP with renewed files: the next handshake shows the new certificate.
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    assert_eq!(served_certificate(addr, &ca).await, server.der);
    let renewed = ca.server(pki_dir.path(), "server");
    d.signal("HUP");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, ready) = match https.get(format!("{base}/readyz")).bearer_auth(AUDITOR).send().await {
            Ok(r) => (r.status().as_u16(), r.json::<Value>().await.unwrap_or_default()),
            Err(_) => (0, Value::Null),
        };
        if status == 200 && ready["last_reload"]["ok"] == true {
            break;
        }
        assert!(Instant::now() < deadline, "no reload seen: {ready}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(served_certificate(addr, &ca).await, renewed.der);
}

/// `check-config` prints the TLS settings (files, the served
/// certificate's SHA-256 as openssl prints it, client certificates), and
/// refuses, exit 2 with `PATH:LINE:COL` at the key naming the file, a
/// certificate that is not PEM, a missing key, a certificate without a
/// key, a key of another certificate and a CA file without certificates.
/// `serve` refuses them the same way.
#[test]
fn check_config_shows_tls_and_refuses_bad_files_at_their_key() {
    let pki_dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("check CA");
    let server = ca.server(pki_dir.path(), "server");
    let ca_file = ca.write(pki_dir.path(), "ca.pem");
    let api = format!("{}\ntls_client_ca_file = {ca_file:?}\ntls_client_auth = \"optional\"", tls_keys(&server));
    let (dir, config) = config_dir("127.0.0.1:7300", &api);
    let (code, out, err) = check_config(&config);
    assert_eq!((code, err.as_str()), (0, ""), "{out}");
    let fingerprint = retentiond::tls::fingerprint(&server.der);
    assert!(
        out.contains(&format!(
            "api tls: cert={} key={} (sha256 fingerprint {fingerprint}, 1 certificate(s) served)\n",
            server.cert.display(),
            server.key.display()
        )),
        "{out}"
    );
    assert!(out.contains(&format!("api tls client certificates: optional (CA {})\n", ca_file.display())), "{out}");

    let garbage = pki_dir.path().join("garbage.crt");
    std::fs::write(&garbage, "-----BEGIN CERTIFICATE-----\n%%%\n-----END CERTIFICATE-----\n").unwrap();
    let other = ca.server(pki_dir.path(), "other");
    let missing = pki_dir.path().join("missing.key");
    let cases: [(String, &str, &str); 5] = [
        (format!("tls_cert_file = {garbage:?}\ntls_key_file = {:?}", server.key), "tls_cert_file", "is not valid PEM"),
        (format!("tls_cert_file = {:?}\ntls_key_file = {missing:?}", server.cert), "tls_key_file", "cannot read"),
        (format!("tls_cert_file = {:?}", server.cert), "tls_cert_file", "api.tls_key_file is not"),
        (
            format!("tls_cert_file = {:?}\ntls_key_file = {:?}", other.cert, server.key),
            "tls_key_file",
            "does not belong",
        ),
        (
            format!("{}\ntls_client_ca_file = {:?}", tls_keys(&server), server.key),
            "tls_client_ca_file",
            "holds no certificate",
        ),
    ];
    for (api, key, says) in cases {
        let (_d, config) = config_dir("127.0.0.1:7300", &api);
        let (code, _, err) = check_config(&config);
        let at = position_of(&config, key);
        assert_eq!(code, 2, "{api}: {err}");
        assert!(err.starts_with(&format!("{at}: ")) && err.contains(says), "{api}: expected {at} and {says:?}: {err}");
        assert!(err.contains(&format!("api.{key}")), "names the key: {err}");
        if says == "is not valid PEM" {
            let served = bin().args(["serve", "--config"]).arg(&config).env("RUST_LOG", "warn").output().unwrap();
            assert_eq!(served.status.code(), Some(2));
            assert!(String::from_utf8_lossy(&served.stderr).contains(&format!("{at}: api.tls_cert_file")));
        }
    }
    drop(dir);
}

/// Plain HTTP off loopback is allowed with a warning at `api.listen`, from
/// `check-config` and in the log at start; on loopback, and with TLS, not.
/// A key file any user may read is warned about too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_off_loopback_is_warned_about_at_check_and_at_start() {
    let port = free_port();
    let (_dir, config) = config_dir(&format!("0.0.0.0:{port}"), "");
    let (code, _, err) = check_config(&config);
    assert_eq!(code, 0, "{err}");
    let at = position_of(&config, "listen");
    assert!(err.starts_with(&format!("warning: {at}: api.listen 0.0.0.0:{port} is not a loopback address")), "{err}");
    assert!(err.contains("plain HTTP") && err.lines().count() == 1, "{err}");

    let mut child = bin()
        .args(["serve", "--config"])
        .arg(&config)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let log = child.stderr.take().unwrap();
    let log = std::thread::spawn(move || std::io::read_to_string(log).unwrap());
    let mut d = Served::wait_healthy(child, format!("http://127.0.0.1:{port}")).await;
    d.signal("TERM");
    assert_eq!(d.exit_code(Duration::from_secs(30)), Some(0));
    let log = log.join().unwrap();
    assert!(log.contains("WARN") && log.contains("is not a loopback address") && log.contains("plain HTTP"), "{log}");

    let (_dir, config) = config_dir("127.0.0.1:7300", "");
    assert_eq!(check_config(&config).2, "", "loopback: no warning");
    let pki_dir = tempfile::tempdir().unwrap();
    let server = Ca::new("warn CA").server(pki_dir.path(), "server");
    let (_dir, config) = config_dir("0.0.0.0:7300", &tls_keys(&server));
    assert_eq!(check_config(&config).2, "", "TLS: no warning");
    std::fs::set_permissions(&server.key, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let err = check_config(&config).2;
    let at = position_of(&config, "tls_key_file");
    assert!(err.starts_with(&format!("warning: {at}: api.tls_key_file")) && err.contains("0644"), "{err}");
}
