//! Talking to the daemon: the address, the token, one HTTP client per
//! command, answers read into the API's wire types, and how a refused or
//! failed request becomes one line on stderr (and exit 1).

use super::args::CtlArgs;
use anyhow::{anyhow, bail, Context};
use reqwest::{Method, StatusCode, Url};
use retentiond::api::wire::{ErrorBody, Readiness};
use retentiond::duration::Dur;
use retentiond::time::{parse_rfc3339, Timestamp};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A 2xx answer twice: the JSON as served (what `--json` prints, keys and
/// all) and the same read into its wire type (what tables show).
pub(super) struct Answer<T> {
    /// As served.
    pub(super) json: Value,
    /// As read.
    pub(super) body: T,
}

/// An answer's JSON read into its wire type `T`. One of another shape (a
/// daemon of another version that changed it) is an error naming `path`.
pub(super) fn shaped<T: DeserializeOwned>(json: &Value, path: &str) -> anyhow::Result<T> {
    T::deserialize(json).with_context(|| format!("{path} answered in a form this ctl cannot read"))
}

/// The daemon's address and token, and one HTTP client for the command.
pub(super) struct Api {
    client: reqwest::Client,
    /// The address without a trailing slash, e.g. `http://127.0.0.1:7300`.
    base: String,
    token: Option<String>,
    timeout: Dur,
}

impl Api {
    pub(super) fn new(args: &CtlArgs) -> anyhow::Result<Api> {
        let base = base_url(&args.addr)?;
        let token = token(args)?;
        let client = tls_for(reqwest::Client::builder(), args, &base)?
            // An API client has no business following redirects with a bearer token.
            .redirect(reqwest::redirect::Policy::none())
            .timeout(args.timeout.0)
            .connect_timeout(args.timeout.0)
            .build()
            .context("building the HTTP client")?;
        Ok(Api { client, base, token, timeout: args.timeout })
    }

    /// Sends one request; any HTTP status is Ok, with the body as text.
    /// Transport failures become a message naming the address.
    pub(super) async fn send(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&Value>,
    ) -> anyhow::Result<(StatusCode, String)> {
        let mut url = Url::parse(&format!("{}{path}", self.base)).with_context(|| format!("bad URL for {path}"))?;
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        let mut req = self.client.request(method, url);
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.map_err(|e| self.transport_error(&e))?;
        let status = resp.status();
        let text = resp.text().await.map_err(|e| self.transport_error(&e))?;
        Ok((status, text))
    }

    /// `GET path?query`, answered with a `T`.
    pub(super) async fn get<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, &str)],
    ) -> anyhow::Result<Answer<T>> {
        self.call(Method::GET, path, query, None).await
    }

    /// `POST path` with `body`, answered with a `T`. The body goes out as a
    /// JSON value, keys sorted, as ctl has always sent it.
    pub(super) async fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &impl Serialize,
    ) -> anyhow::Result<Answer<T>> {
        let body = serde_json::to_value(body).with_context(|| format!("building the body for {path}"))?;
        self.call(Method::POST, path, &[], Some(&body)).await
    }

    /// Sends one request and returns a 2xx answer; any other status is an
    /// error carrying the server's message.
    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&Value>,
    ) -> anyhow::Result<Answer<T>> {
        let (status, text) = self.send(method, path, query, body).await?;
        check_status(status, &text, path)?;
        let json = serde_json::from_str(&text)
            .with_context(|| format!("{path} answered {status} with something that is not JSON"))?;
        let body = shaped(&json, path)?;
        Ok(Answer { json, body })
    }

    /// The daemon's clock reading from /readyz (which may be a manual clock
    /// far from this machine's), or None for an older daemon that does not
    /// serve /readyz or reports no `now`. A refused token is an error, not
    /// a reason to fall back to this machine's clock.
    pub(super) async fn daemon_now(&self) -> anyhow::Result<Option<Timestamp>> {
        let (status, text) = self.send(Method::GET, "/readyz", &[], None).await?;
        if status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        // Not ready (503) still reports the clock.
        if status != StatusCode::SERVICE_UNAVAILABLE {
            check_status(status, &text, "/readyz").context("reading the daemon's clock from /readyz")?;
        }
        let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let now = Readiness::deserialize(&v).ok().and_then(|r| r.now);
        Ok(now.and_then(|s| parse_rfc3339(&s).ok()))
    }

    fn transport_error(&self, e: &reqwest::Error) -> anyhow::Error {
        let base = &self.base;
        if let Some(plain) = base.strip_prefix("https://").filter(|_| is_tls_failure(e)) {
            anyhow!(
                "TLS with {base} failed: {}; a daemon with [api] tls_cert_file needs the CA that signed its \
                 certificate (--ca-file) and, if it asks for one, a client certificate (--client-cert, \
                 --client-key); one without it serves plain http: use --addr http://{plain}",
                root_cause(e)
            )
        } else if e.is_timeout() {
            anyhow!("no answer from {base} within {} (set --timeout)", self.timeout)
        } else if e.is_connect() {
            anyhow!(
                "cannot connect to {base}: {}; is retentiond running there? Set --addr or RETENTIOND_ADDR",
                root_cause(e)
            )
        } else {
            anyhow!("request to {base} failed: {}", root_cause(e))
        }
    }
}

/// The client's trust and identity for `base`: with `--ca-file`, that CA
/// only (a daemon's own CA need not be the system's, and a machine without
/// a CA bundle still works); else the system's CAs for `https://`, none
/// for plain `http://`; with `--client-cert` and `--client-key`, the
/// certificate shown to a daemon that asks for one. These options with a
/// plain `http://` address are refused rather than ignored: the token
/// would cross the network in clear.
fn tls_for(builder: reqwest::ClientBuilder, args: &CtlArgs, base: &str) -> anyhow::Result<reqwest::ClientBuilder> {
    let tls_asked = args.ca_file.is_some() || args.client_cert.is_some();
    if tls_asked && !base.starts_with("https://") {
        bail!(
            "--ca-file and --client-cert (or RETENTIOND_CA_FILE, RETENTIOND_CLIENT_CERT) are for an https:// \
             address, and the address is {base}: use --addr https://.."
        );
    }
    let mut builder = match &args.ca_file {
        None => retentiond::outbound::trust_roots_for(builder, base),
        Some(path) => {
            let pem = std::fs::read(path).with_context(|| format!("reading the CA file {}", path.display()))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .with_context(|| format!("the CA file {} is not PEM certificates", path.display()))?;
            if certs.is_empty() {
                bail!("the CA file {} holds no certificate (-----BEGIN CERTIFICATE-----)", path.display());
            }
            builder.tls_certs_only(certs)
        }
    };
    if let (Some(cert), Some(key)) = (&args.client_cert, &args.client_key) {
        let mut pem =
            std::fs::read(cert).with_context(|| format!("reading the client certificate {}", cert.display()))?;
        pem.push(b'\n');
        pem.extend(std::fs::read(key).with_context(|| format!("reading the client key {}", key.display()))?);
        // reqwest's message names neither file, and never the key's bytes.
        let identity = reqwest::Identity::from_pem(&pem).map_err(|e| {
            anyhow!(
                "--client-cert {} and --client-key {} are not a PEM certificate and its private key: {}",
                cert.display(),
                key.display(),
                root_cause(&e)
            )
        })?;
        builder = builder.identity(identity);
    }
    Ok(builder)
}

/// The innermost cause of an error: what actually went wrong ("Connection
/// refused (os error 111)"), without reqwest's wrapping.
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut last: &dyn std::error::Error = e;
    while let Some(s) = last.source() {
        last = s;
    }
    last.to_string()
}

/// True if a request failed in TLS (not in TCP or DNS): rustls reports a
/// peer that does not speak TLS (a plain http daemon) as an I/O error of
/// kind InvalidData (wrapped in another I/O error, whose `source` skips
/// it), and certificate and handshake problems by name.
fn is_tls_failure(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(e);
    while let Some(err) = next {
        let text = err.to_string().to_lowercase();
        if ["tls", "certificate", "handshake"].iter().any(|w| text.contains(w)) {
            return true;
        }
        let mut io = err.downcast_ref::<std::io::Error>();
        while let Some(i) = io {
            if i.kind() == std::io::ErrorKind::InvalidData {
                return true;
            }
            io = i.get_ref().and_then(|inner| inner.downcast_ref::<std::io::Error>());
        }
        next = err.source();
    }
    false
}

/// The port an address without one means: the daemon's default listen port.
const DEFAULT_PORT: u16 = 7300;

/// True if the address (with a scheme) spells out a port. `Url` cannot
/// tell: it drops a scheme's default port (`http://h:80` reads as `http://h`).
fn names_port(full: &str) -> bool {
    let rest = full.split_once("://").map_or(full, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    // After an IPv6 literal's closing bracket, if any.
    let tail = authority.rsplit_once(']').map_or(authority, |(_, t)| t);
    tail.rsplit_once(':').is_some_and(|(_, port)| !port.is_empty())
}

/// `--addr` as a base URL; `host:port` without a scheme means http, and an
/// address without a port means port 7300 (not the scheme's 80 or 443).
pub(super) fn base_url(addr: &str) -> anyhow::Result<String> {
    let hint = "expected e.g. http://127.0.0.1:7300 or 127.0.0.1:7300";
    let full = if addr.contains("://") { addr.to_string() } else { format!("http://{addr}") };
    // An address with a user name or password is never echoed: the
    // password would land in a terminal's scrollback or a CI log.
    if addr.contains('@') {
        bail!("--addr may not hold a user name or password (the token goes in --token-file); {hint}");
    }
    let mut url = Url::parse(&full).map_err(|e| anyhow!("--addr {addr:?} is not an address: {e}; {hint}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
        bail!("--addr {addr:?} is not an http(s) address; {hint}");
    }
    if url.query().is_some() || url.fragment().is_some() {
        bail!("--addr {addr:?} may not hold a query or fragment; {hint}");
    }
    if !names_port(&full) {
        url.set_port(Some(DEFAULT_PORT)).map_err(|()| anyhow!("--addr {addr:?} cannot take a port; {hint}"))?;
    }
    Ok(url.as_str().trim_end_matches('/').to_string())
}

/// The token: --token, else --token-file, else RETENTIOND_TOKEN, else
/// RETENTIOND_TOKEN_FILE, so a flag always beats the environment. Read by
/// hand rather than through clap's `env` so that order holds.
fn token(args: &CtlArgs) -> anyhow::Result<Option<String>> {
    let from_file = |path: &std::path::Path| -> anyhow::Result<String> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading the token file {}", path.display()))?;
        let t = text.trim();
        if t.is_empty() {
            bail!("the token file {} is empty", path.display());
        }
        Ok(t.to_string())
    };
    let env = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    let token = if let Some(t) = &args.token {
        Some(t.trim().to_string())
    } else if let Some(p) = &args.token_file {
        Some(from_file(p)?)
    } else if let Some(t) = env("RETENTIOND_TOKEN") {
        Some(t.into_string().map_err(|_| anyhow!("RETENTIOND_TOKEN is not valid UTF-8"))?.trim().to_string())
    } else if let Some(p) = env("RETENTIOND_TOKEN_FILE") {
        Some(from_file(std::path::Path::new(&p))?)
    } else {
        None
    };
    // Checked here so a bad token gives a clear message, not a header error
    // (which must not quote it).
    if token.as_deref().is_some_and(|t| t.is_empty() || !t.bytes().all(|b| b.is_ascii_graphic())) {
        bail!("the token is empty or holds spaces or characters an HTTP header cannot carry");
    }
    Ok(token)
}

/// Turns a non-2xx answer from `path` into one clear message with the
/// server's `error` (and `field`); the status decides the wording.
pub(super) fn check_status(status: StatusCode, text: &str, path: &str) -> anyhow::Result<()> {
    status_error(status, text, path, &|i| format!("event #{} of the request", i + 1))
}

/// [`check_status`], with `locate` naming the event a 400's `index` points at.
pub(super) fn status_error(
    status: StatusCode,
    text: &str,
    path: &str,
    locate: &dyn Fn(u64) -> String,
) -> anyhow::Result<()> {
    if status.is_success() {
        return Ok(());
    }
    let v: Value = serde_json::from_str(text).unwrap_or(Value::Null);
    let body = ErrorBody::deserialize(&v).ok();
    let message = match &body {
        Some(b) => b.error.clone(),
        None if text.trim().is_empty() => status.canonical_reason().unwrap_or("no message").to_string(),
        None => text.trim().chars().take(200).collect(),
    };
    let code = status.as_u16();
    Err(match status {
        StatusCode::UNAUTHORIZED => {
            anyhow!("token refused ({code}): {message}; set --token, --token-file or RETENTIOND_TOKEN")
        }
        StatusCode::FORBIDDEN => anyhow!("the token's role may not do this ({code}): {message}"),
        StatusCode::BAD_REQUEST => {
            let mut at = String::new();
            if let Some(i) = body.as_ref().and_then(|b| b.index) {
                at.push_str(&format!("{}, ", locate(i)));
            }
            if let Some(f) = body.as_ref().and_then(|b| b.field.as_deref()) {
                at.push_str(&format!("field {f}: "));
            }
            // The API stores nothing of a request it answers 400.
            let stored = if path == "/v1/events" { "; nothing of the request was stored" } else { "" };
            anyhow!("bad request ({code}): {at}{message}{stored}")
        }
        StatusCode::PAYLOAD_TOO_LARGE => {
            let stored = if path == "/v1/events" { "; nothing of the request was stored" } else { "" };
            anyhow!("request too large ({code}): {message}{stored}")
        }
        StatusCode::UNSUPPORTED_MEDIA_TYPE => anyhow!("the daemon refused the body's type ({code}): {message}"),
        StatusCode::TOO_MANY_REQUESTS => {
            anyhow!("refused for now ({code}): {message}; check the token of every client on this host")
        }
        // An unknown route answers an empty 404: an older daemon.
        StatusCode::NOT_FOUND if v.is_null() => anyhow!("not found ({code}): this daemon does not serve {path}"),
        StatusCode::NOT_FOUND => anyhow!("not found ({code}): {message}"),
        _ => anyhow!("the daemon answered {status}: {message}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ctl::commands::generated_event_id;

    #[test]
    fn limits_and_refusals_read_as_one_line() {
        let cases = [
            (413, r#"{"error":"1001 events in one request; at most 1000 are accepted: split the batch","limit":"events_per_request","max":1000}"#,
             "request too large (413): 1001 events in one request; at most 1000 are accepted: split the batch; nothing of the request was stored"),
            (415, r#"{"error":"Content-Type must be application/json (charset utf-8), not \"text/plain\""}"#,
             "the daemon refused the body's type (415): Content-Type must be application/json (charset utf-8), not \"text/plain\""),
            (429, r#"{"error":"too many failed authentications from this address; try again in 42 s"}"#,
             "refused for now (429): too many failed authentications from this address; try again in 42 s; check the token of every client on this host"),
        ];
        for (code, body, want) in cases {
            let status = StatusCode::from_u16(code).unwrap();
            let err = check_status(status, body, "/v1/events").unwrap_err().to_string();
            assert_eq!(err, want);
            assert!(!err.contains('\n'));
        }
    }

    #[test]
    fn addresses_and_generated_ids() {
        assert_eq!(base_url("127.0.0.1:7300").unwrap(), "http://127.0.0.1:7300");
        assert_eq!(base_url("https://h.example:8443/").unwrap(), "https://h.example:8443");
        // No port: the daemon's 7300, not the scheme's 80 or 443.
        for (addr, want) in [
            ("localhost", "http://localhost:7300"),
            ("http://localhost/", "http://localhost:7300"),
            ("https://h.example", "https://h.example:7300"),
            ("[::1]", "http://[::1]:7300"),
            ("localhost:", "http://localhost:7300"),
            ("http://[::1]:7301", "http://[::1]:7301"),
            ("http://h:80", "http://h"),
            ("https://h:443/", "https://h"),
        ] {
            assert_eq!(base_url(addr).unwrap(), want, "{addr}");
        }
        assert!(base_url("ftp://h").is_err());
        for addr in ["http://user:s3cret@h:1", "http://:s3cret@h:1", "s3cret@h:1"] {
            let err = base_url(addr).unwrap_err().to_string();
            assert!(err.contains("user name or password") && !err.contains("s3cret"), "{err}");
        }
        let id = generated_event_id("hold-placed", &"h".repeat(128));
        assert!(retentiond::ids::check_id(&id).is_ok(), "{id}");
        assert!(id.starts_with("ctl-hold-placed-hhh"));
        let id = generated_event_id("decide", "q1");
        assert!(retentiond::ids::check_id(&id).is_ok() && id.starts_with("ctl-decide-q1-"), "{id}");
    }
}
