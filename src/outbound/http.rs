//! The signed HTTP POST that the `http` executor and the `http` notifier
//! both send.
//!
//! A request carries a JSON body and the headers `Content-Type:
//! application/json`, `Idempotency-Key: <key>` and `X-Retentiond-Signature:
//! sha256=<hex HMAC-SHA256(secret, body)>`. The caller chooses the body and
//! a key that is stable across retries, so the receiver can deduplicate.
//!
//! The secret is never in the config: the spec names a file or an
//! environment variable, read at every request (a rotated key is picked up
//! without a restart) and never at validation (a config check may run on
//! another machine). Surrounding whitespace is trimmed from it, so a key file
//! written with a trailing newline signs with the key itself.
//!
//! Only `200`-`299` except `202 Accepted` counts as done: 202 says the
//! request was taken but not carried out yet, so it is a failure and the
//! caller retries with the same key until the receiver answers 200 or 204.
//! Redirects are not followed (a redirect is an error), environment proxies
//! are ignored, and the whole exchange is bounded by the spec's timeout.
//!
//! `https://` URLs use rustls with the platform's trust store. Prefer them
//! for anything not on loopback: the signature authenticates the request,
//! but only TLS authenticates the answer, and a forged 2xx would be recorded
//! as done. `http://` URLs need no trust store at all (see
//! [`trust_roots_for`]), so they work on a system without a CA bundle.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

use hmac::{Hmac, Mac};
use reqwest::header::{HeaderValue, CONTENT_TYPE};
use reqwest::{StatusCode, Url};
use sha2::Sha256;

use crate::duration::Dur;

/// Header carrying the idempotency key.
pub const IDEMPOTENCY_HEADER: &str = "Idempotency-Key";

/// Header carrying `sha256=<hex HMAC-SHA256(secret, body)>`.
pub const SIGNATURE_HEADER: &str = "X-Retentiond-Signature";

/// Largest secret file read; a key is a few dozen bytes, so anything bigger
/// is the wrong file.
const SECRET_FILE_CAP: u64 = 64 * 1024;

/// `kind = "http"` as written in the config, for a store's executor and for
/// the notifier alike: where to POST and where the signing key is.
///
/// Unknown keys are refused (a misspelt `timout` must not silently fall back
/// to the default). The enums that hold it ([`crate::executor::ExecutorSpec`],
/// [`crate::notifier::NotifierSpec`]) are internally tagged by `kind` and
/// hold it as a newtype variant: serde strips the tag before this struct sees
/// the table, so `deny_unknown_fields` works here, where `#[serde(flatten)]`
/// would have silently disabled it.
#[derive(Clone, Debug, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSpec {
    /// Where to POST, `https://...` or `http://...`.
    pub url: String,
    /// File holding the HMAC-SHA256 secret (absolute path); read at every
    /// request. Exactly one of `secret_file` and `secret_env`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_file: Option<PathBuf>,
    /// Environment variable holding the HMAC-SHA256 secret; read at every
    /// request. There is deliberately no key for the secret itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_env: Option<String>,
    /// Bound on the whole exchange, connect to answer (default 30s: a
    /// service answers within seconds; a slower one is retried rather than
    /// waited for).
    #[serde(default = "default_timeout")]
    pub timeout: Dur,
}

fn default_timeout() -> Dur {
    Dur::from_secs(30)
}

/// The error `Url::parse` returns (the `url` crate's, reached through
/// reqwest's re-export of `Url`).
type UrlParseError = <Url as FromStr>::Err;

/// What is wrong with an [`HttpSpec`]. The caller prefixes the part of the
/// config it belongs to (`http executor: `, `notifier: `).
#[derive(Debug, thiserror::Error)]
pub enum HttpSpecError {
    /// The URL does not parse.
    #[error("url {url:?} is not a valid URL: {source}")]
    UrlInvalid {
        /// The configured URL.
        url: String,
        /// The parser's reason.
        source: UrlParseError,
    },
    /// The URL is neither `http` nor `https`.
    #[error("url {url:?} has scheme {scheme:?}; only http and https are supported")]
    UrlScheme {
        /// The configured URL.
        url: String,
        /// Its scheme.
        scheme: String,
    },
    /// The URL names no host.
    #[error("url {url:?} has no host")]
    UrlNoHost {
        /// The configured URL.
        url: String,
    },
    /// The URL holds a user name or password, which would put a credential
    /// in the config file.
    #[error(
        "url {url:?} carries credentials; credentials never go in the config \
         (requests are authenticated by the HMAC signature)"
    )]
    UrlCredentials {
        /// The configured URL.
        url: String,
    },
    /// The URL has a `#fragment`, which is never sent to the server.
    #[error("url {url:?} has a #fragment, which is never sent")]
    UrlFragment {
        /// The configured URL.
        url: String,
    },
    /// Both `secret_file` and `secret_env` are set.
    #[error("set only one of secret_file and secret_env, not both")]
    BothSecrets,
    /// Neither `secret_file` nor `secret_env` is set.
    #[error("set secret_file or secret_env (the HMAC secret is never written in the config itself)")]
    NoSecret,
    /// `secret_file` is relative, so it would depend on the working directory.
    #[error("secret_file {} must be an absolute path", path.display())]
    SecretFileRelative {
        /// The configured path.
        path: PathBuf,
    },
    /// `secret_file` holds a NUL byte, which no path can.
    #[error("secret_file {path:?} contains a NUL byte")]
    SecretFileNul {
        /// The configured path.
        path: PathBuf,
    },
    /// `secret_env` cannot be the name of an environment variable.
    #[error("secret_env {name:?} is not a valid environment variable name")]
    SecretEnvName {
        /// The configured name.
        name: String,
    },
    /// A zero timeout would fail every request.
    #[error("timeout must be greater than zero")]
    ZeroTimeout,
}

impl HttpSpec {
    /// Static checks at config-load time (and again before every request).
    /// Does not read the secret: the file may only exist where the daemon
    /// runs.
    pub fn validate(&self) -> Result<(), HttpSpecError> {
        self.checked().map(drop)
    }

    /// The parsed URL and the secret's source of a valid spec.
    fn checked(&self) -> Result<(Url, SecretSource), HttpSpecError> {
        let url = check_url(&self.url)?;
        let secret = self.secret_source()?;
        if self.timeout.is_zero() {
            return Err(HttpSpecError::ZeroTimeout);
        }
        Ok((url, secret))
    }

    /// Where the secret comes from: exactly one of `secret_file` and
    /// `secret_env`, well formed.
    pub fn secret_source(&self) -> Result<SecretSource, HttpSpecError> {
        let source = match (&self.secret_file, &self.secret_env) {
            (Some(file), None) => SecretSource::File(file.clone()),
            (None, Some(env)) => SecretSource::Env(env.clone()),
            (Some(_), Some(_)) => return Err(HttpSpecError::BothSecrets),
            (None, None) => return Err(HttpSpecError::NoSecret),
        };
        source.check()?;
        Ok(source)
    }
}

fn check_url(url: &str) -> Result<Url, HttpSpecError> {
    let parsed = Url::parse(url).map_err(|source| HttpSpecError::UrlInvalid { url: url.to_owned(), source })?;
    match parsed.scheme() {
        "http" | "https" => {}
        other => return Err(HttpSpecError::UrlScheme { url: url.to_owned(), scheme: other.to_owned() }),
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(HttpSpecError::UrlNoHost { url: url.to_owned() });
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(HttpSpecError::UrlCredentials { url: url.to_owned() });
    }
    if parsed.fragment().is_some() {
        return Err(HttpSpecError::UrlFragment { url: url.to_owned() });
    }
    Ok(parsed)
}

/// Where the HMAC secret comes from (exactly one source).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SecretSource {
    /// The file's contents, whitespace-trimmed.
    File(PathBuf),
    /// The environment variable's value, whitespace-trimmed.
    Env(String),
}

/// "file /etc/x" or "environment variable X", for error messages.
impl fmt::Display for SecretSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretSource::File(path) => write!(f, "file {}", path.display()),
            SecretSource::Env(name) => write!(f, "environment variable {name}"),
        }
    }
}

/// The HMAC secret could not be read, or is empty; nothing was sent.
#[derive(Debug, thiserror::Error)]
#[error("cannot use the HMAC secret from {from}: {problem}; nothing was sent")]
pub struct SecretError {
    /// Where the secret was looked for.
    pub from: SecretSource,
    /// What is wrong with it.
    #[source]
    pub problem: SecretProblem,
}

/// What is wrong with a secret (never its value).
#[derive(Debug, thiserror::Error)]
pub enum SecretProblem {
    /// The file could not be inspected or read.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The path is a directory or a device.
    #[error("not a regular file")]
    NotAFile,
    /// The file is larger than any key, so it is the wrong file.
    #[error("larger than {} bytes", SECRET_FILE_CAP)]
    TooLarge,
    /// The environment variable is not set.
    #[error("not set")]
    NotSet,
    /// Nothing but whitespace: signing with an empty key proves nothing.
    #[error("empty")]
    Empty,
}

impl SecretSource {
    fn check(&self) -> Result<(), HttpSpecError> {
        match self {
            SecretSource::File(path) => {
                if !path.is_absolute() {
                    return Err(HttpSpecError::SecretFileRelative { path: path.clone() });
                }
                if path.as_os_str().as_encoded_bytes().contains(&0) {
                    return Err(HttpSpecError::SecretFileNul { path: path.clone() });
                }
            }
            SecretSource::Env(name) => {
                if name.is_empty() || name.contains(['=', '\0']) {
                    return Err(HttpSpecError::SecretEnvName { name: name.clone() });
                }
            }
        }
        Ok(())
    }

    /// Reads the secret now. Missing, unreadable, oversized or empty (after
    /// trimming) is an error, so nothing is ever signed with an empty key.
    async fn read(&self) -> Result<Vec<u8>, SecretError> {
        let fail = |problem: SecretProblem| SecretError { from: self.clone(), problem };
        let raw = match self {
            SecretSource::File(path) => {
                let meta = tokio::fs::metadata(path).await.map_err(|e| fail(e.into()))?;
                if !meta.is_file() {
                    return Err(fail(SecretProblem::NotAFile));
                }
                if meta.len() > SECRET_FILE_CAP {
                    return Err(fail(SecretProblem::TooLarge));
                }
                tokio::fs::read(path).await.map_err(|e| fail(e.into()))?
            }
            SecretSource::Env(name) => match std::env::var_os(name) {
                None => return Err(fail(SecretProblem::NotSet)),
                Some(v) => v.into_encoded_bytes(),
            },
        };
        let secret = raw.trim_ascii();
        if secret.is_empty() {
            return Err(fail(SecretProblem::Empty));
        }
        Ok(secret.to_vec())
    }
}

/// Sets the TLS trust of a client for requests to `url`.
///
/// reqwest 0.13's `rustls` feature verifies servers with
/// rustls-platform-verifier, which on Linux loads the system's CA bundle
/// (through rustls-native-certs, honouring `SSL_CERT_FILE` and
/// `SSL_CERT_DIR`) when the client is *built*, and fails the build when it
/// finds none ("No CA certificates were loaded from the system",
/// seanmonstar/reqwest#2965): even a client only ever used for
/// `http://127.0.0.1` needed `/etc/ssl/certs`. So a client for a plain
/// `http://` URL trusts no roots at all ([`reqwest::ClientBuilder::tls_certs_only`]
/// with none): it never speaks TLS, as every client here refuses redirects
/// (a redirect to `https://` could not be followed anyway). Any other URL
/// keeps the platform's roots, and without a CA bundle its client cannot
/// be built; [`tls_problem`] says so in advance.
pub fn trust_roots_for(builder: reqwest::ClientBuilder, url: &str) -> reqwest::ClientBuilder {
    if Url::parse(url).is_ok_and(|u| u.scheme() == "http") {
        builder.tls_certs_only(std::iter::empty())
    } else {
        builder
    }
}

/// A client builder for `url` as every outbound POST uses it: trust as
/// [`trust_roots_for`] says, no redirects, no environment proxies.
fn client_builder(url: &str) -> reqwest::ClientBuilder {
    trust_roots_for(reqwest::Client::builder(), url).redirect(reqwest::redirect::Policy::none()).no_proxy()
}

/// Why a client for `url` cannot be built on this machine (for `https://`:
/// no CA certificates could be loaded), or None. `check-config` and the
/// daemon's start report it, naming the store or notifier, since every
/// call through such a client would fail.
pub fn tls_problem(url: &str) -> Option<TlsProblem> {
    client_builder(url).build().err().map(|source| TlsProblem { endpoint: short_url(url), source })
}

/// A client for an endpoint cannot be built on this machine; see
/// [`tls_problem`].
#[derive(Debug, thiserror::Error)]
#[error("cannot build an HTTP client for {endpoint}: {}", error_chain(source))]
pub struct TlsProblem {
    /// The URL without query.
    endpoint: String,
    /// reqwest's reason.
    source: reqwest::Error,
}

/// `sha256=<hex HMAC-SHA256(secret, body)>`, the signature header's value.
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    // HMAC accepts keys of any length; `new_from_slice` cannot fail for it.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// The HTTP client for a spec could not be built (on this machine: an
/// `https://` URL and no CA certificates); every request fails with it.
#[derive(Clone, Debug, thiserror::Error)]
#[error("cannot build HTTP client: {}", error_chain(source.as_ref()))]
pub struct ClientError {
    /// reqwest's reason (shared: the client is built once, the error
    /// reported by every request).
    #[source]
    source: Arc<reqwest::Error>,
}

/// Why a [`SignedPost`] did not end in a 2xx other than 202. Display names
/// the endpoint and the cause, never the body or the secret.
#[derive(Debug, thiserror::Error)]
pub enum PostError {
    /// The spec fails [`HttpSpec::validate`]; nothing was sent.
    #[error("http spec is invalid: {0}")]
    Spec(#[source] HttpSpecError),
    /// The client could not be built; nothing was sent.
    #[error(transparent)]
    Client(ClientError),
    /// The secret could not be read; nothing was sent.
    #[error(transparent)]
    Secret(#[from] SecretError),
    /// The request could not be completed (connection refused, reset, DNS,
    /// ...); whether the receiver acted is unknown, so it is retried.
    #[error("request to {endpoint} failed: {}", error_chain(source))]
    Request {
        /// The URL without query.
        endpoint: String,
        /// The transport error (without the URL, which may hold a query).
        source: reqwest::Error,
    },
    /// No answer within the timeout; whether the receiver acted is
    /// unknown, so it is retried (with the same idempotency key).
    #[error("request to {endpoint} timed out after {after}")]
    Timeout {
        /// The URL without query.
        endpoint: String,
        /// The configured timeout.
        after: Dur,
    },
    /// An answer other than 2xx, or 202 Accepted (not done yet); redirects
    /// are not followed.
    #[error("{endpoint} answered HTTP {status}")]
    Status {
        /// The URL without query.
        endpoint: String,
        /// The status code.
        status: u16,
    },
}

/// Sends signed POSTs for one [`HttpSpec`]; a 2xx answer other than 202
/// means the receiver acted. The receiver must be idempotent by the
/// `Idempotency-Key` header.
#[derive(Clone, Debug)]
pub struct SignedPost {
    spec: HttpSpec,
    /// Built once; Err (reported by every request) if it cannot be built.
    client: Result<reqwest::Client, ClientError>,
}

/// A [`SignedPost`] whose spec passed validation and whose client exists:
/// what is left to fail is the secret and the exchange.
#[derive(Debug)]
pub struct Prepared<'a> {
    spec: &'a HttpSpec,
    url: Url,
    client: &'a reqwest::Client,
    secret: SecretSource,
}

impl SignedPost {
    /// A sender for `spec`. Not validated here: every request re-validates
    /// and refuses an invalid spec, so a spec that skipped
    /// [`HttpSpec::validate`] still sends nothing.
    pub fn new(spec: HttpSpec) -> SignedPost {
        let client = client_builder(&spec.url)
            .timeout(spec.timeout.0)
            .connect_timeout(spec.timeout.0)
            .user_agent(concat!("retentiond/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ClientError { source: Arc::new(e) });
        SignedPost { spec, client }
    }

    /// `<scheme>://<host>[:port]<path>`, for logs and errors (no query,
    /// which may carry something an operator would rather not log, and no
    /// credentials).
    pub fn endpoint(&self) -> String {
        short_url(&self.spec.url)
    }

    /// The client, or why it could not be built.
    pub fn client(&self) -> Result<&reqwest::Client, &ClientError> {
        self.client.as_ref()
    }

    /// Checks everything that does not depend on the request: the spec
    /// (again) and the client. A caller does this before building its body,
    /// so a broken spec is reported as such whatever the body would be.
    pub fn prepare(&self) -> Result<Prepared<'_>, PostError> {
        let (url, secret) = self.spec.checked().map_err(PostError::Spec)?;
        let client = self.client.as_ref().map_err(|e| PostError::Client(e.clone()))?;
        Ok(Prepared { spec: &self.spec, url, client, secret })
    }

    /// POSTs a JSON `body` with the idempotency `key` and the signature.
    /// Ok only for a 2xx other than 202.
    pub async fn post(&self, key: &str, body: Vec<u8>) -> Result<(), PostError> {
        self.prepare()?.send(key, body).await
    }
}

impl Prepared<'_> {
    /// Reads the secret, signs `body` and sends it; see [`SignedPost::post`].
    pub async fn send(self, key: &str, body: Vec<u8>) -> Result<(), PostError> {
        // Read last, right before sending: a rotated key applies at once.
        let secret = self.secret.read().await?;
        let sig = signature(&secret, &body);
        drop(secret);

        let endpoint = short_url(&self.spec.url);
        let request = self
            .client
            .post(self.url)
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .header(IDEMPOTENCY_HEADER, key)
            .header(SIGNATURE_HEADER, sig)
            .body(body);
        let response = match request.send().await {
            Ok(r) => r,
            Err(e) if e.is_timeout() => return Err(PostError::Timeout { endpoint, after: self.spec.timeout }),
            Err(e) => return Err(PostError::Request { endpoint, source: e.without_url() }),
        };
        check_status(endpoint, response.status())
    }
}

/// Ok for a 2xx other than 202 Accepted; everything else (including 3xx,
/// since redirects are not followed) is [`PostError::Status`].
fn check_status(endpoint: String, status: StatusCode) -> Result<(), PostError> {
    if status.is_success() && status != StatusCode::ACCEPTED {
        Ok(())
    } else {
        Err(PostError::Status { endpoint, status: status.as_u16() })
    }
}

/// `scheme://host[:port]/path` without userinfo, query or fragment; the raw
/// string (capped) if it does not parse.
fn short_url(url: &str) -> String {
    match Url::parse(url) {
        Ok(u) => {
            let port = u.port().map(|p| format!(":{p}")).unwrap_or_default();
            format!("{}://{}{}{}", u.scheme(), u.host_str().unwrap_or(""), port, u.path())
        }
        Err(_) => format!("{:?}", url.chars().take(100).collect::<String>()),
    }
}

/// An error and its sources, joined with ": " (reqwest's own Display leaves
/// out the cause, e.g. "connection refused"); control characters escaped.
pub(crate) fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out.chars().flat_map(|c| if c.is_control() { c.escape_default().collect() } else { vec![c] }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Dur = Dur::from_secs(10);

    fn spec(url: &str, secret_file: Option<&str>, secret_env: Option<&str>, timeout: Dur) -> HttpSpec {
        HttpSpec {
            url: url.to_owned(),
            secret_file: secret_file.map(PathBuf::from),
            secret_env: secret_env.map(str::to_owned),
            timeout,
        }
    }

    #[test]
    fn validate_rejects_bad_specs() {
        let file = Some("/etc/retentiond/purge.key");
        let env = Some("RETENTIOND_PURGE_KEY");
        let url = "http://127.0.0.1:8443/v1/purge";
        assert!(spec(url, file, None, T).validate().is_ok());
        assert!(spec(url, None, env, T).validate().is_ok());
        assert!(spec("http://purge.internal/v1/purge?tenant_group=a", None, env, T).validate().is_ok());
        assert!(spec("https://purge.internal/v1/purge", file, None, T).validate().is_ok());

        let cases: Vec<(HttpSpec, &str)> = vec![
            (spec(url, Some("/k"), Some("K"), T), "not both"),
            (spec(url, None, None, T), "set secret_file or secret_env"),
            (spec("not a url", file, None, T), "not a valid URL"),
            (spec("http//x/y", file, None, T), "not a valid URL"),
            (spec("ftp://purge.internal/x", file, None, T), "scheme \"ftp\""),
            (spec("file:///etc/passwd", file, None, T), "scheme \"file\""),
            (spec("http://user:pw@purge.internal/x", file, None, T), "credentials"),
            (spec("http://purge.internal/x#frag", file, None, T), "fragment"),
            (spec(url, Some("etc/purge.key"), None, T), "absolute"),
            (spec(url, None, Some("A=B"), T), "not a valid environment variable name"),
            (spec(url, None, Some(""), T), "not a valid environment variable name"),
            (spec(url, file, None, Dur::default()), "timeout must be greater than zero"),
        ];
        for (s, needle) in cases {
            let err = s.validate().expect_err(&s.url).to_string();
            assert!(err.contains(needle), "{s:?}: {err}");
            assert!(!err.contains('\n'), "{err}");
        }
    }

    /// The executor and the notifier hold the same [`HttpSpec`] as a
    /// newtype variant of a `kind`-tagged enum: a misspelt key is still
    /// refused in both places with the config file's position, the missing
    /// `timeout` still defaults to 30s, and the spec is written back as the
    /// flat table it was read from.
    #[test]
    fn both_holders_refuse_unknown_keys_and_keep_the_flat_table() {
        let path = std::path::Path::new("/etc/r.toml");
        let store = |keys: &str| {
            format!(
                "[daemon]\nstate_dir = \"s\"\n[stores.p]\nclass = \"online\"\n\
                 executor = {{ kind = \"http\", url = \"http://h/p\", secret_env = \"K\"{keys} }}\n"
            )
        };
        let notifier = |keys: &str| {
            format!(
                "[daemon]\nstate_dir = \"s\"\n[notifier]\nkind = \"http\"\nurl = \"http://h/p\"\n\
                 secret_env = \"K\"\n{keys}"
            )
        };
        let expected = "unknown field `timout`, expected one of `url`, `secret_file`, `secret_env`, `timeout`";
        let err = crate::config::parse(path, &store(r#", timout = "1s""#)).unwrap_err().to_string();
        assert_eq!(err, format!("/etc/r.toml:5:12: {expected}"));
        let err = crate::config::parse(path, &notifier("timout = \"1s\"\n")).unwrap_err().to_string();
        assert_eq!(err, format!("/etc/r.toml:3:1: {expected}"));

        let with_store = crate::config::parse(path, &store("")).unwrap();
        let with_notifier = crate::config::parse(path, &notifier("")).unwrap();
        let want = spec("http://h/p", None, Some("K"), Dur::from_secs(30));
        assert_eq!(with_store.executors["p"], crate::executor::ExecutorSpec::Http(want.clone()));
        assert_eq!(with_notifier.notifier, Some(crate::notifier::NotifierSpec::Http(want)));

        #[derive(serde::Serialize)]
        struct Written<'a> {
            executor: &'a crate::executor::ExecutorSpec,
            notifier: &'a Option<crate::notifier::NotifierSpec>,
        }
        let text =
            toml::to_string(&Written { executor: &with_store.executors["p"], notifier: &with_notifier.notifier })
                .unwrap();
        let table = "kind = \"http\"\nurl = \"http://h/p\"\nsecret_env = \"K\"\ntimeout = \"30s\"\n";
        assert_eq!(text, format!("[executor]\n{table}\n[notifier]\n{table}"));
    }

    /// An invalid spec, an unusable client and a missing secret all fail
    /// before anything is sent, each with its own error.
    #[tokio::test]
    async fn nothing_is_sent_without_a_valid_spec_a_client_and_a_secret() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/notices", listener.local_addr().unwrap());
        let bad = SignedPost::new(spec(&url, Some("/k"), Some("K"), T));
        let err = bad.post("k", b"{}".to_vec()).await.unwrap_err();
        assert!(matches!(err, PostError::Spec(HttpSpecError::BothSecrets)), "{err}");
        assert_eq!(err.to_string(), "http spec is invalid: set only one of secret_file and secret_env, not both");

        let unset = SignedPost::new(spec(&url, None, Some("RETENTIOND_TEST_SURELY_UNSET_5F1C"), T));
        let err = unset.post("k", b"{}".to_vec()).await.unwrap_err();
        assert!(matches!(&err, PostError::Secret(SecretError { problem: SecretProblem::NotSet, .. })), "{err}");
        assert_eq!(
            err.to_string(),
            "cannot use the HMAC secret from environment variable RETENTIOND_TEST_SURELY_UNSET_5F1C: not set; \
             nothing was sent"
        );
        listener.set_nonblocking(true).unwrap();
        assert!(listener.accept().is_err(), "a connection was made");
    }
}
