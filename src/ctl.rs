//! `retentiond ctl`: a client of the HTTP API (product-spec §2, §4), so
//! operators and scripts need neither curl nor the JSON shapes by heart.
//!
//! Every subcommand is one endpoint (two for `forecast --within` and events
//! dated "now", which first read the daemon's clock from /readyz). Output is
//! a readable table by default and the server's JSON with `--json` (for
//! `metrics`, its samples as JSON). Exit codes, so scripts can branch:
//! - 0: done (`restore-check`: restoring is allowed);
//! - 1: any error (one line on stderr starting `retentiond ctl: `), an event
//!   `rejected`, or `status` answered "not ready";
//! - 2: usage error (from clap, or `forecast` with neither option);
//! - 3: `restore-check` refused.
//!
//! The token is sent as `Authorization: Bearer` only, and never printed.

use anyhow::{anyhow, bail, Context};
use clap::{Args, Subcommand};
use reqwest::{Method, StatusCode, Url};
use retentiond::duration::Dur;
use retentiond::time::{fmt_rfc3339, parse_rfc3339, Timestamp};
use serde_json::{json, Value};
use std::fmt::Write as _;
use std::io::{IsTerminal, Read, Write as _};
use std::path::PathBuf;
use std::process::ExitCode;

/// The help heading of the flags every `ctl` subcommand takes.
const GLOBAL: &str = "Global options";

/// `retentiond ctl`'s flags. They are global, so they may also follow the
/// subcommand (`ctl resource r1 --json`).
#[derive(Args)]
pub struct CtlArgs {
    /// The daemon's API address: http://HOST:PORT, https://.., or HOST:PORT;
    /// without a port, port 7300 (the daemon's default), for https too. The
    /// daemon serves plain http; https only through a TLS proxy in front.
    #[arg(
        long,
        global = true,
        env = "RETENTIOND_ADDR",
        hide_env_values = true,
        default_value = "http://127.0.0.1:7300",
        help_heading = GLOBAL
    )]
    addr: String,
    /// The bearer token [env: RETENTIOND_TOKEN]. Visible in `ps`: prefer
    /// --token-file or the variable.
    #[arg(long, global = true, conflicts_with = "token_file", help_heading = GLOBAL)]
    token: Option<String>,
    /// A file holding the bearer token (surrounding whitespace ignored)
    /// [env: RETENTIOND_TOKEN_FILE].
    #[arg(long, global = true, help_heading = GLOBAL)]
    token_file: Option<PathBuf>,
    /// Print the server's JSON answer (pretty) instead of tables.
    #[arg(long, global = true, help_heading = GLOBAL)]
    json: bool,
    /// Give up on a request after this long ("30s", "2m").
    #[arg(long, global = true, default_value = "30s", value_parser = parse_dur, help_heading = GLOBAL)]
    timeout: Dur,
    #[command(subcommand)]
    command: CtlCommand,
}

/// One subcommand per endpoint.
#[derive(Subcommand)]
enum CtlCommand {
    /// Post events (POST /v1/events) from FILE or standard input ("-"): one
    /// JSON event, a JSON array, or JSON Lines. Exit 1 if any is rejected.
    Events {
        /// The file; standard input when absent or "-".
        file: Option<PathBuf>,
    },
    /// Show a resource (GET /v1/resources/ID): state, deadline, holds, copies, history.
    Resource {
        /// The resource id.
        #[arg(value_parser = parse_id)]
        id: String,
    },
    /// The deletion forecast (GET /v1/deletions): every deletion due before a time.
    Forecast {
        /// Deletions due before this time (RFC 3339). Give this or --within.
        #[arg(long, value_name = "RFC3339", value_parser = parse_time, conflicts_with = "within")]
        before: Option<Timestamp>,
        /// Deletions due within this long of the daemon's clock ("30d", read
        /// from /readyz; a manual clock may be far from this machine's).
        #[arg(long, value_name = "DURATION", value_parser = parse_dur)]
        within: Option<Dur>,
    },
    /// Place or release a legal hold (posts a hold.placed / hold.released event).
    Hold {
        #[command(subcommand)]
        command: HoldCommand,
    },
    /// Stop every deletion and executor call (POST /v1/admin/pause).
    Pause,
    /// Undo a pause (POST /v1/admin/resume).
    Resume,
    /// Lift a tripped mass-deletion guard, releasing exactly the batch it
    /// holds, and a clock anomaly (POST /v1/admin/approve).
    Approve {
        /// Approve only if the held batch has this digest (from
        /// `guard.tripped` or `ctl status`); refused if another is held.
        #[arg(long, value_name = "DIGEST")]
        batch: Option<String>,
    },
    /// Call a resource's stuck copies again (POST /v1/admin/retry).
    Retry {
        /// The resource id.
        #[arg(value_parser = parse_id)]
        resource: String,
        /// Only the copy in this store.
        #[arg(long, value_parser = parse_id)]
        store: Option<String>,
    },
    /// Move a manual clock (POST /v1/admin/clock; admin only).
    Clock {
        #[command(subcommand)]
        command: ClockCommand,
    },
    /// Audit records after a sequence number, oldest first (GET /v1/audit).
    Audit {
        /// Only records after this one.
        #[arg(long, default_value_t = 0)]
        after_seq: u64,
        /// At most this many records (the daemon caps it at 10000).
        #[arg(long, default_value_t = 1000)]
        limit: u64,
    },
    /// A purged resource's deletion certificate (GET /v1/certificates/ID). With
    /// --json, the certificate itself, for `retentiond audit certificate --file`.
    Certificate {
        /// The resource id.
        #[arg(value_parser = parse_id)]
        resource: String,
    },
    /// May a backup of a resource or tenant be restored? (GET /v1/restore-check)
    /// Exit 0 when allowed, 3 when refused.
    RestoreCheck {
        /// The resource id.
        #[arg(long, value_parser = parse_id, required_unless_present = "tenant", conflicts_with = "tenant")]
        resource: Option<String>,
        /// The tenant id (a whole-tenant restore).
        #[arg(long, value_parser = parse_id)]
        tenant: Option<String>,
    },
    /// Readiness, safeguards, the clock source and the last reload (GET
    /// /readyz); exit 1 when not ready. A refused reload is shown (and noted
    /// on stderr) but exits 0: the daemon runs on its previous config.
    Status,
    /// The Prometheus metrics (GET /metrics), as served; with --json, the
    /// samples as `{"samples":[{"name","labels","value"}]}`.
    Metrics,
    /// Reschedule a product's resources under its current policy (POST /v1/admin/apply-policy).
    ApplyPolicy {
        /// The product name.
        #[arg(value_parser = parse_id)]
        product: String,
    },
}

/// `ctl hold ...`.
#[derive(Subcommand)]
enum HoldCommand {
    /// Place a hold: nothing it covers is deleted until it is released.
    Place {
        /// The hold's id.
        #[arg(long, value_parser = parse_id)]
        hold_id: String,
        /// Who demands it (court, regulator, legal team).
        #[arg(long)]
        authority: String,
        /// Why, as the authority gives it.
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        target: HoldTarget,
        #[command(flatten)]
        event: EventOpts,
    },
    /// Release a hold.
    Release {
        /// The hold's id.
        #[arg(long, value_parser = parse_id)]
        hold_id: String,
        #[command(flatten)]
        target: HoldTarget,
        #[command(flatten)]
        event: EventOpts,
    },
}

/// What a hold covers: one resource, or (without --resource) the whole tenant.
#[derive(Args)]
struct HoldTarget {
    /// The resource; leave out to cover the whole tenant.
    #[arg(long, value_parser = parse_id)]
    resource: Option<String>,
    /// The tenant; with --resource it may be left out and is then read from
    /// the resource.
    #[arg(long, value_parser = parse_id, required_unless_present = "resource")]
    tenant: Option<String>,
}

/// The envelope of an event ctl builds itself.
#[derive(Args)]
struct EventOpts {
    /// When it happened (RFC 3339); default: the daemon's clock (from
    /// /readyz; this machine's only for a daemon too old to report it).
    #[arg(long, value_parser = parse_time)]
    at: Option<Timestamp>,
    /// The event id; give the one printed by a failed attempt to retry it
    /// without posting it twice.
    #[arg(long, value_parser = parse_id)]
    event_id: Option<String>,
}

/// `ctl clock ...`.
#[derive(Subcommand)]
enum ClockCommand {
    /// Let time pass ("15d", "36h"): wall and monotonic readings move together.
    Advance {
        /// How long.
        #[arg(value_parser = parse_dur)]
        by: Dur,
    },
    /// Set the wall reading alone, as someone setting a machine's clock.
    Set {
        /// The new reading (RFC 3339).
        #[arg(value_parser = parse_time)]
        to: Timestamp,
    },
}

/// The alphabet rule only: ctl also looks up ids stored before new ids were
/// refused a leading `-`; the daemon refuses such a new id itself (400).
fn parse_id(s: &str) -> Result<String, String> {
    retentiond::ids::check_stored_id(s).map(|()| s.to_string()).map_err(str::to_string)
}

fn parse_time(s: &str) -> Result<Timestamp, String> {
    parse_rfc3339(s).map_err(|e| e.to_string())
}

fn parse_dur(s: &str) -> Result<Dur, String> {
    s.parse()
}

/// What a command produced: text for stdout, the exit code, and perhaps a
/// line for stderr explaining a non-zero code.
#[derive(Debug)]
struct Done {
    out: String,
    code: u8,
    note: Option<String>,
}

impl Done {
    fn ok(out: String) -> Self {
        Done { out, code: 0, note: None }
    }

    /// A usage error clap cannot express as plainly: exit 2, one line.
    fn usage(note: &str) -> Self {
        Done { out: String::new(), code: 2, note: Some(note.to_string()) }
    }
}

/// Runs `retentiond ctl` and returns the process's exit code.
pub fn main(args: CtlArgs) -> ExitCode {
    let result = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")
        .and_then(|rt| rt.block_on(run(args)));
    match result {
        Ok(done) => {
            // A closed pipe (`ctl audit | head`) is not an error worth a
            // panic; a full disk under `> cert.json` is an error.
            let mut stdout = std::io::stdout().lock();
            if let Err(e) = stdout.write_all(done.out.as_bytes()).and_then(|()| stdout.flush()) {
                if e.kind() != std::io::ErrorKind::BrokenPipe {
                    eprintln!("retentiond ctl: writing standard output: {e}");
                    return ExitCode::from(1);
                }
            }
            if let Some(note) = done.note {
                eprintln!("retentiond ctl: {}", clean(&note));
            }
            ExitCode::from(done.code)
        }
        Err(e) => {
            eprintln!("retentiond ctl: {}", clean(&format!("{e:#}")));
            ExitCode::from(1)
        }
    }
}

async fn run(args: CtlArgs) -> anyhow::Result<Done> {
    // Checked here rather than by clap, whose message would name --before
    // alone.
    if let CtlCommand::Forecast { before: None, within: None } = args.command {
        return Ok(Done::usage("forecast: give --before RFC3339 or --within DURATION"));
    }
    let api = Api::new(&args)?;
    let json_out = args.json;
    match args.command {
        CtlCommand::Events { file } => events(&api, json_out, file).await,
        CtlCommand::Resource { id } => {
            let v = api.call(Method::GET, &format!("/v1/resources/{id}"), &[], None).await?;
            Ok(Done::ok(if json_out { pretty(&v) } else { show_resource(&v) }))
        }
        CtlCommand::Forecast { before, within } => {
            let before = match (before, within) {
                (Some(t), _) => t,
                (None, Some(d)) => {
                    let now = api.daemon_now().await?.ok_or_else(|| {
                        anyhow!("--within counts from the daemon's clock, which this (older) daemon does not report; use --before")
                    })?;
                    now + d.to_chrono()
                }
                (None, None) => bail!("give --before RFC3339 or --within DURATION"),
            };
            let v = api.call(Method::GET, "/v1/deletions", &[("before", &fmt_rfc3339(before))], None).await?;
            Ok(Done::ok(if json_out { pretty(&v) } else { show_forecast(&v) }))
        }
        CtlCommand::Hold { command } => hold(&api, json_out, command).await,
        CtlCommand::Pause => admin(&api, json_out, "pause", json!({})).await,
        CtlCommand::Resume => admin(&api, json_out, "resume", json!({})).await,
        CtlCommand::Approve { batch } => {
            let body = match batch {
                Some(d) => json!({ "batch_digest": d }),
                None => json!({}),
            };
            admin(&api, json_out, "approve", body).await
        }
        CtlCommand::Retry { resource, store } => {
            admin(&api, json_out, "retry", json!({"resource": resource, "store": store})).await
        }
        CtlCommand::Clock { command } => {
            let body = match command {
                ClockCommand::Advance { by } => json!({"advance": by.to_string()}),
                ClockCommand::Set { to } => json!({"set": fmt_rfc3339(to)}),
            };
            admin(&api, json_out, "clock", body).await
        }
        CtlCommand::Audit { after_seq, limit } => {
            let query = [("after_seq", after_seq.to_string()), ("limit", limit.to_string())];
            let query: Vec<(&str, &str)> = query.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let v = api.call(Method::GET, "/v1/audit", &query, None).await?;
            Ok(Done::ok(if json_out { pretty(&v) } else { show_audit(&v, limit) }))
        }
        CtlCommand::Certificate { resource } => {
            let v = api.call(Method::GET, &format!("/v1/certificates/{resource}"), &[], None).await?;
            Ok(Done::ok(if json_out { pretty(&v) } else { show_certificate(&v) }))
        }
        CtlCommand::RestoreCheck { resource, tenant } => {
            let query = match (&resource, &tenant) {
                (Some(r), _) => ("resource", r.as_str()),
                (None, Some(t)) => ("tenant", t.as_str()),
                (None, None) => bail!("give --resource or --tenant"),
            };
            let v = api.call(Method::GET, "/v1/restore-check", &[query], None).await?;
            let allowed = v["allowed"].as_bool().ok_or_else(|| anyhow!("the answer has no \"allowed\": {v}"))?;
            let out = if json_out { pretty(&v) } else { show_restore_check(&v, allowed) };
            Ok(Done { out, code: if allowed { 0 } else { 3 }, note: None })
        }
        CtlCommand::Status => {
            let (status, text) = api.send(Method::GET, "/readyz", &[], None).await?;
            status_done(status, &text, json_out)
        }
        CtlCommand::Metrics => {
            let (status, text) = api.send(Method::GET, "/metrics", &[], None).await?;
            check_status(status, &text, "/metrics")?;
            Ok(Done::ok(if json_out { pretty(&metrics_json(&text)?) } else { text }))
        }
        CtlCommand::ApplyPolicy { product } => {
            let v = api.call(Method::POST, "/v1/admin/apply-policy", &[], Some(&json!({"product": product}))).await?;
            Ok(Done::ok(if json_out { pretty(&v) } else { show_apply_policy(&v) }))
        }
    }
}

/// The daemon's address and token, and one HTTP client for the command.
struct Api {
    client: reqwest::Client,
    /// The address without a trailing slash, e.g. `http://127.0.0.1:7300`.
    base: String,
    token: Option<String>,
    timeout: Dur,
}

impl Api {
    fn new(args: &CtlArgs) -> anyhow::Result<Api> {
        let base = base_url(&args.addr)?;
        let token = token(args)?;
        // A plain-http address needs no CA bundle on this machine.
        let client = retentiond::outbound::trust_roots_for(reqwest::Client::builder(), &base)
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
    async fn send(
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

    /// Sends one request and returns the JSON of a 2xx answer; any other
    /// status is an error carrying the server's message.
    async fn call(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&Value>,
    ) -> anyhow::Result<Value> {
        let (status, text) = self.send(method, path, query, body).await?;
        check_status(status, &text, path)?;
        serde_json::from_str(&text).with_context(|| format!("{path} answered {status} with something that is not JSON"))
    }

    /// The daemon's clock reading from /readyz (which may be a manual clock
    /// far from this machine's), or None for an older daemon that does not
    /// serve /readyz or reports no `now`. A refused token is an error, not
    /// a reason to fall back to this machine's clock.
    async fn daemon_now(&self) -> anyhow::Result<Option<Timestamp>> {
        let (status, text) = self.send(Method::GET, "/readyz", &[], None).await?;
        if status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        // Not ready (503) still reports the clock.
        if status != StatusCode::SERVICE_UNAVAILABLE {
            check_status(status, &text, "/readyz").context("reading the daemon's clock from /readyz")?;
        }
        let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        Ok(v["now"].as_str().and_then(|s| parse_rfc3339(s).ok()))
    }

    fn transport_error(&self, e: &reqwest::Error) -> anyhow::Error {
        let base = &self.base;
        if let Some(plain) = base.strip_prefix("https://").filter(|_| is_tls_failure(e)) {
            anyhow!(
                "TLS with {base} failed: {}; the daemon serves plain http (on loopback) unless a TLS proxy \
                 fronts it: for the daemon itself, use --addr http://{plain}",
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
fn base_url(addr: &str) -> anyhow::Result<String> {
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
fn check_status(status: StatusCode, text: &str, path: &str) -> anyhow::Result<()> {
    status_error(status, text, path, &|i| format!("event #{} of the request", i + 1))
}

/// [`check_status`], with `locate` naming the event a 400's `index` points at.
fn status_error(status: StatusCode, text: &str, path: &str, locate: &dyn Fn(u64) -> String) -> anyhow::Result<()> {
    if status.is_success() {
        return Ok(());
    }
    let v: Value = serde_json::from_str(text).unwrap_or(Value::Null);
    let message = match v["error"].as_str() {
        Some(e) => e.to_string(),
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
            if let Some(i) = v["index"].as_u64() {
                at.push_str(&format!("{}, ", locate(i)));
            }
            if let Some(f) = v["field"].as_str() {
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

/// `ctl events`: reads, detects the form, posts, prints the results.
async fn events(api: &Api, json_out: bool, file: Option<PathBuf>) -> anyhow::Result<Done> {
    let (name, text) = match file.as_deref() {
        Some(p) if p.as_os_str() != "-" => {
            (p.display().to_string(), std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?)
        }
        _ => {
            let stdin = std::io::stdin();
            if file.is_none() && stdin.is_terminal() {
                bail!("give a FILE of events, or pipe them on standard input");
            }
            let mut s = String::new();
            stdin.lock().read_to_string(&mut s).context("reading standard input")?;
            ("standard input".to_string(), s)
        }
    };
    let (body, lines) =
        parse_events(&text).with_context(|| format!("{name}: not one JSON event, a JSON array or JSON Lines"))?;
    if body.as_array().is_some_and(Vec::is_empty) {
        bail!("{name} holds no events");
    }
    let (status, answer) = api.send(Method::POST, "/v1/events", &[], Some(&body)).await?;
    let locate = |i: u64| match lines.get(i as usize) {
        Some(line) => format!("the event on line {line} of {name}"),
        None => format!("event #{} of {name}", i + 1),
    };
    status_error(status, &answer, "/v1/events", &locate)?;
    let v: Value = serde_json::from_str(&answer).context("/v1/events answered with something that is not JSON")?;
    Ok(event_results(&v, json_out))
}

/// One JSON value (an event or an array, sent as is), or several values in a
/// row, as JSON Lines are (sent as an array). With several values, also the
/// line each starts on, so a 400 naming an index can name the line.
fn parse_events(text: &str) -> anyhow::Result<(Value, Vec<usize>)> {
    let mut values: Vec<Value> = Vec::new();
    let mut lines = Vec::new();
    let (mut line, mut counted) = (1, 0);
    // Strictly: a repeated key is an error here, as at the daemon, rather
    // than silently sent as its last value.
    let mut stream = serde_json::Deserializer::from_str(text).into_iter::<retentiond::json::StrictValue>();
    loop {
        let from = stream.byte_offset();
        let start = text.len() - text[from..].trim_start().len();
        let Some(v) = stream.next() else { break };
        values.push(v?.0);
        line += text[counted..start].matches('\n').count();
        counted = start;
        lines.push(line);
    }
    match values.len() {
        1 => Ok((values.remove(0), Vec::new())),
        _ => {
            if let Some(i) = values.iter().position(|v| !v.is_object()) {
                bail!("line {}: not an event object (JSON Lines hold one object per line)", lines[i]);
            }
            Ok((Value::Array(values), lines))
        }
    }
}

/// Prints the results of POST /v1/events; exit 1 if any was rejected.
fn event_results(v: &Value, json_out: bool) -> Done {
    let results = v["results"].as_array().map(Vec::as_slice).unwrap_or_default();
    let rows: Vec<Vec<String>> = results
        .iter()
        .map(|r| {
            let error = match (r["field"].as_str(), r["error"].as_str()) {
                (Some(f), Some(e)) => format!("{f}: {e}"),
                (None, Some(e)) => e.to_string(),
                _ => String::new(),
            };
            vec![cell(&r["event_id"]), cell(&r["status"]), error]
        })
        .collect();
    let count = |s: &str| results.iter().filter(|r| r["status"] == s).count();
    let rejected = count("rejected");
    let out = if json_out {
        pretty(v)
    } else {
        let mut out = table(&["EVENT_ID", "STATUS", "ERROR"], &rows);
        let _ = writeln!(out, "{} applied, {} duplicate, {rejected} rejected", count("applied"), count("duplicate"));
        out
    };
    if rejected > 0 {
        Done { out, code: 1, note: Some(format!("{rejected} of {} events rejected", results.len())) }
    } else {
        Done::ok(out)
    }
}

/// `ctl hold place|release`: builds the event and posts it.
async fn hold(api: &Api, json_out: bool, command: HoldCommand) -> anyhow::Result<Done> {
    let (kind, hold_id, target, opts, extra) = match command {
        HoldCommand::Place { hold_id, authority, reason, target, event } => {
            let extra = json!({"authority": authority, "reason": reason});
            ("placed", hold_id, target, event, extra)
        }
        HoldCommand::Release { hold_id, target, event } => ("released", hold_id, target, event, json!({})),
    };
    let tenant = match (&target.tenant, &target.resource) {
        (Some(t), _) => t.clone(),
        (None, Some(r)) => tenant_of(api, r, if kind == "placed" { "place" } else { "release" }).await?,
        (None, None) => bail!("give --resource or --tenant"),
    };
    let at = match opts.at {
        Some(t) => t,
        None => api.daemon_now().await?.unwrap_or_else(chrono::Utc::now),
    };
    let event_id = opts.event_id.unwrap_or_else(|| generated_event_id(kind, &hold_id));
    let mut ev = json!({"event_id": event_id, "type": format!("hold.{kind}"), "at": fmt_rfc3339(at),
                        "tenant": tenant, "hold_id": hold_id});
    if let Some(r) = target.resource {
        ev["resource"] = json!(r);
    }
    if let (Some(o), Some(e)) = (ev.as_object_mut(), extra.as_object()) {
        o.extend(e.clone());
    }
    let v = api.call(Method::POST, "/v1/events", &[], Some(&ev)).await?;
    let mut done = event_results(&v, json_out);
    if done.code != 0 {
        let error = v["results"][0]["error"].as_str().unwrap_or("see its error");
        // The time hint only where the time is the problem (dated too far
        // ahead of the daemon's clock); other refusals are about the hold.
        let hint = if error.contains("max_future_skew") { "; --at sets the event's time" } else { "" };
        done.note = Some(format!("hold.{kind} event {event_id} rejected: {error}{hint}"));
    }
    Ok(done)
}

/// The tenant of `resource`, read from the daemon for a hold given
/// --resource without --tenant. `verb` ("place", "release") words a refused
/// read: a role that may not read resources may not post holds either
/// (operator or admin), which is what the user needs to hear.
async fn tenant_of(api: &Api, resource: &str, verb: &str) -> anyhow::Result<String> {
    let path = format!("/v1/resources/{resource}");
    let reading = || format!("reading resource {resource} for its tenant");
    let (status, text) = api.send(Method::GET, &path, &[], None).await.with_context(reading)?;
    let refused = check_status(status, &text, &path);
    match status {
        StatusCode::UNAUTHORIZED => {
            refused.map_err(|e| anyhow!("{e:#}; to {verb} holds, use an operator or admin token"))?;
        }
        StatusCode::FORBIDDEN => {
            let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            let why = v["error"].as_str().unwrap_or("forbidden");
            bail!("the token's role may not {verb} holds (403: {why}); an operator or admin token is needed");
        }
        StatusCode::NOT_FOUND => {
            refused.with_context(|| format!("{} (or give --tenant)", reading()))?;
        }
        _ => refused.with_context(reading)?,
    }
    let v: Value = serde_json::from_str(&text)
        .with_context(|| format!("{path} answered {status} with something that is not JSON"))?;
    Ok(v["tenant"].as_str().ok_or_else(|| anyhow!("resource {resource} has no tenant in the answer"))?.to_string())
}

/// `ctl-hold-placed-<hold_id>-<unix nanos>`, cut to the 128-character id limit.
fn generated_event_id(kind: &str, hold_id: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let prefix = format!("ctl-hold-{kind}-");
    let suffix = format!("-{nanos}");
    let room = 128usize.saturating_sub(prefix.len() + suffix.len());
    // Ids are ASCII (checked by clap), so byte slicing is safe.
    format!("{prefix}{}{suffix}", &hold_id[..hold_id.len().min(room)])
}

/// `ctl pause|resume|approve|retry|clock`: POST /v1/admin/WHAT.
async fn admin(api: &Api, json_out: bool, what: &str, body: Value) -> anyhow::Result<Done> {
    let v = api.call(Method::POST, &format!("/v1/admin/{what}"), &[], Some(&body)).await?;
    if json_out {
        return Ok(Done::ok(pretty(&v)));
    }
    let line = match what {
        "pause" => "paused: no deletion starts and no executor is called until `resume`".to_string(),
        "resume" => "resumed".to_string(),
        "approve" => match (v["approved"].as_array(), v["batch"].as_object()) {
            (Some(a), Some(b)) if !a.is_empty() => format!(
                "approved: {}; released the held batch of {} resources (digest {})",
                list(&v["approved"]),
                cell(&b["size"]),
                cell(&b["digest"])
            ),
            (Some(a), _) if !a.is_empty() => format!("approved: {}", list(&v["approved"])),
            _ => "approved: nothing was stopped".to_string(),
        },
        "retry" => format!("retried {} stuck copies", cell(&v["retried"])),
        "clock" => format!("now: {}", cell(&v["now"])),
        _ => pretty(&v),
    };
    Ok(Done::ok(format!("{line}\n")))
}

fn show_resource(v: &Value) -> String {
    let holds: Vec<String> = v["holds"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|h| {
            format!(
                "{} ({}, {}: {})",
                cell(&h["hold_id"]),
                cell(&h["scope"]),
                cell(&h["authority"]),
                cell(&h["reason"])
            )
        })
        .collect();
    let mut f = vec![
        ("resource", cell(&v["resource"])),
        ("tenant", cell(&v["tenant"])),
        ("product", format!("{} ({})", cell(&v["product"]), cell(&v["billing"]))),
        ("term_end", cell(&v["term_end"])),
        ("state", cell(&v["state"])),
        ("cause", with_reason(&v["cause"], &v["reason"])),
        ("buffer_started_at", cell(&v["buffer_started_at"])),
        ("delete_after", cell(&v["delete_after"])),
        ("policy_version", cell(&v["policy_version"])),
    ];
    if !v["not_before"].is_null() {
        f.push(("not_before", cell(&v["not_before"])));
    }
    if !v["deletion_started_at"].is_null() {
        f.push(("deletion_started", cell(&v["deletion_started_at"])));
    }
    if let Some(a) = v["arrears"].as_object() {
        let mut s = format!("since {}", cell(&a["started_at"]));
        if !a["amount"].is_null() {
            let _ = write!(s, ", {} {}", cell(&a["amount"]), cell(&a["currency"]));
        }
        if let Some(fee) = a.get("late_fee") {
            let _ = write!(s, ", late fee so far {}", cell(fee));
        }
        f.push(("arrears", s));
    }
    f.push(("holds", if holds.is_empty() { "none".to_string() } else { holds.join("; ") }));
    let mut out = fields(&f);
    let copies: Vec<Vec<String>> = v["copies"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            let state = if c["stuck"] == true { format!("{} (stuck)", cell(&c["state"])) } else { cell(&c["state"]) };
            vec![
                cell(&c["store"]),
                cell(&c["copy"]),
                cell(&c["class"]),
                state,
                cell(&c["attempts"]),
                cell(&c["done_at"]),
                cell(&c["last_error"]),
            ]
        })
        .collect();
    out.push_str("\ncopies:\n");
    out.push_str(&table(&["STORE", "COPY", "CLASS", "STATE", "ATTEMPTS", "DONE_AT", "LAST_ERROR"], &copies));
    let history: Vec<Vec<String>> = v["history"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|h| vec![cell(&h["at"]), cell(&h["what"]), cell(&h["detail"])])
        .collect();
    out.push_str("\nhistory:\n");
    out.push_str(&table(&["AT", "WHAT", "DETAIL"], &history));
    out
}

fn show_forecast(v: &Value) -> String {
    let rows: Vec<Vec<String>> = v["deletions"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|d| {
            vec![
                cell(&d["deadline"]),
                cell(&d["resource"]),
                cell(&d["tenant"]),
                cell(&d["state"]),
                with_reason(&d["cause"], &d["reason"]),
                if d["projected"] == true { "yes".into() } else { "no".into() },
                list(&d["blockers"]),
            ]
        })
        .collect();
    let mut out = format!("deletions due before {}:\n", cell(&v["before"]));
    out.push_str(&table(&["DEADLINE", "RESOURCE", "TENANT", "STATE", "CAUSE", "PROJECTED", "BLOCKERS"], &rows));
    out
}

fn show_audit(v: &Value, limit: u64) -> String {
    let records = v["records"].as_array().map(Vec::as_slice).unwrap_or_default();
    let rows: Vec<Vec<String>> = records
        .iter()
        .map(|r| vec![cell(&r["seq"]), cell(&r["at"]), cell(&r["kind"]), cell(&r["tenant"]), cell(&r["resource"])])
        .collect();
    let mut out = table(&["SEQ", "AT", "KIND", "TENANT", "RESOURCE"], &rows);
    if records.len() as u64 >= limit {
        if let Some(last) = records.last() {
            let _ = writeln!(out, "(more may follow: --after-seq {})", cell(&last["seq"]));
        }
    }
    out
}

fn show_certificate(v: &Value) -> String {
    let mut out = fields(&[
        ("certificate", cell(&v["certificate"])),
        ("resource", cell(&v["resource"])),
        ("tenant", cell(&v["tenant"])),
        ("product", cell(&v["product"])),
        ("cause", with_reason(&v["cause"], &v["reason"])),
        ("policy_version", cell(&v["policy_version"])),
        ("buffer_started_at", cell(&v["buffer_started_at"])),
        ("delete_after", cell(&v["delete_after"])),
        ("deletion_started", cell(&v["deletion_started_at"])),
        ("purged_at", cell(&v["purged_at"])),
        ("purged_seq", cell(&v["purged_seq"])),
        ("chain_hash", cell(&v["chain_hash"])),
    ]);
    let copies: Vec<Vec<String>> = v["copies"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            vec![
                cell(&c["store"]),
                cell(&c["copy"]),
                cell(&c["class"]),
                cell(&c["outcome"]),
                cell(&c["at"]),
                cell(&c["audit_seq"]),
            ]
        })
        .collect();
    out.push_str("\ncopies:\n");
    out.push_str(&table(&["STORE", "COPY", "CLASS", "OUTCOME", "AT", "AUDIT_SEQ"], &copies));
    out
}

fn show_restore_check(v: &Value, allowed: bool) -> String {
    let mut out = format!("{}: {}\n", if allowed { "allowed" } else { "refused" }, cell(&v["reason"]));
    if let Some(refused) = v["refused"].as_array().filter(|r| !r.is_empty()) {
        let rows: Vec<Vec<String>> = refused.iter().map(|r| vec![cell(&r["resource"]), cell(&r["reason"])]).collect();
        out.push_str(&table(&["RESOURCE", "REASON"], &rows));
    }
    out
}

/// `ctl status` from /readyz's answer: exit 0 when ready (200), 1 with a
/// note when not (503, which still carries the body), 1 on any other error.
fn status_done(status: StatusCode, text: &str, json_out: bool) -> anyhow::Result<Done> {
    if status != StatusCode::SERVICE_UNAVAILABLE {
        check_status(status, text, "/readyz")?;
    }
    let v: Value = serde_json::from_str(text)
        .with_context(|| format!("/readyz answered {status} with something that is not JSON"))?;
    let out = if json_out { pretty(&v) } else { show_status(&v) };
    // A refused reload leaves the daemon ready on its previous config: exit
    // 0, but say so on stderr too, where it is seen when stdout is not.
    let refused = (v["last_reload"]["ok"] == false).then(|| {
        format!(
            "last reload REFUSED at {}: {}; the previous config stays in force",
            cell(&v["last_reload"]["at"]),
            cell(&v["last_reload"]["error"])
        )
    });
    if status.is_success() {
        Ok(Done { out, code: 0, note: refused })
    } else {
        let not_ready = format!("not ready ({status})");
        let note = refused.map_or_else(|| not_ready.clone(), |r| format!("{not_ready}; {r}"));
        Ok(Done { out, code: 1, note: Some(note) })
    }
}

/// The last reload for `status`: "none since start", "ok at T: changed
/// ecs; added web", or "REFUSED at T: why".
fn show_reload(r: &Value) -> String {
    if r.is_null() {
        return "none since start".to_string();
    }
    match r["ok"].as_bool() {
        Some(true) => {
            let moved: Vec<String> = ["changed", "added", "removed"]
                .iter()
                .filter(|k| r[**k].as_array().is_some_and(|a| !a.is_empty()))
                .map(|k| format!("{k} {}", list(&r[*k])))
                .collect();
            let moved = if moved.is_empty() { "no policy changed".to_string() } else { moved.join("; ") };
            format!("ok at {}: {moved}", cell(&r["at"]))
        }
        Some(false) => format!("REFUSED at {}: {}", cell(&r["at"]), cell(&r["error"])),
        None => cell(r),
    }
}

/// `key  value` lines; `policies` as `product version` pairs.
fn show_status(v: &Value) -> String {
    match v.as_object() {
        Some(o) => {
            let f: Vec<(&str, String)> = o
                .iter()
                .map(|(k, x)| {
                    let shown = match x.as_object() {
                        Some(m) if k == "policies" => {
                            let pairs: Vec<String> =
                                m.iter().map(|(p, ver)| format!("{} {}", clean(p), cell(ver))).collect();
                            if pairs.is_empty() {
                                "-".to_string()
                            } else {
                                pairs.join(", ")
                            }
                        }
                        _ if k == "last_reload" => show_reload(x),
                        Some(b) if k == "guard_batch" => format!(
                            "{} resources held since {} (digest {}); `ctl approve --batch DIGEST` releases them",
                            cell(&b["size"]),
                            cell(&b["tripped_at"]),
                            cell(&b["digest"])
                        ),
                        _ => cell(x),
                    };
                    (k.as_str(), shown)
                })
                .collect();
            fields(&f)
        }
        None => format!("{}\n", cell(v)),
    }
}

/// The Prometheus text format as JSON for `metrics --json`:
/// `{"samples":[{"name","labels":{..},"value"}]}` in the served order.
/// Values are JSON numbers, or strings for NaN and infinities (which JSON
/// cannot hold); comments and timestamps are left out.
fn metrics_json(text: &str) -> anyhow::Result<Value> {
    let mut samples = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let sample = metric_sample(line).ok_or_else(|| anyhow!("/metrics line {}: not a Prometheus sample", i + 1))?;
        samples.push(sample);
    }
    Ok(json!({ "samples": samples }))
}

/// One sample line: `name{k="v",..} value [timestamp]`.
fn metric_sample(line: &str) -> Option<Value> {
    let name_end = line.find(['{', ' ', '\t']).unwrap_or(line.len());
    let name = &line[..name_end];
    if name.is_empty() {
        return None;
    }
    let mut labels = serde_json::Map::new();
    let mut rest = &line[name_end..];
    if let Some(mut r) = rest.strip_prefix('{') {
        loop {
            r = r.trim_start().trim_start_matches(',').trim_start();
            if let Some(after) = r.strip_prefix('}') {
                rest = after;
                break;
            }
            let (key, after) = r.split_once('=')?;
            let mut chars = after.strip_prefix('"')?.char_indices();
            let mut value = String::new();
            let end = loop {
                match chars.next()? {
                    (_, '\\') => match chars.next()?.1 {
                        'n' => value.push('\n'),
                        c => value.push(c),
                    },
                    (j, '"') => break j,
                    (_, c) => value.push(c),
                }
            };
            labels.insert(key.trim().to_string(), json!(value));
            r = &after[1 + end + 1..];
        }
    }
    let raw = rest.split_whitespace().next()?;
    let value = match raw {
        "+Inf" | "-Inf" | "NaN" => json!(raw),
        _ => match raw.parse::<i64>() {
            Ok(n) => json!(n),
            Err(_) => serde_json::Number::from_f64(raw.parse::<f64>().ok()?).map_or_else(|| json!(raw), Value::Number),
        },
    };
    Some(json!({"name": name, "labels": labels, "value": value}))
}

fn show_apply_policy(v: &Value) -> String {
    let rows: Vec<Vec<String>> = v["rescheduled"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| vec![cell(&r["resource"]), cell(&r["from"]), cell(&r["to"])])
        .collect();
    let mut out = format!(
        "product {}, policy {}: {} rescheduled, {} unchanged\n",
        cell(&v["product"]),
        cell(&v["policy_version"]),
        rows.len(),
        cell(&v["unchanged"])
    );
    out.push_str(&table(&["RESOURCE", "FROM", "TO"], &rows));
    out
}

fn pretty(v: &Value) -> String {
    let mut s = serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string());
    s.push('\n');
    s
}

// Table and field layout: the one place output is aligned.

/// A JSON value as a table cell: strings bare, null as "-", arrays joined
/// with commas, objects as compact JSON; control characters replaced.
fn cell(v: &Value) -> String {
    match v {
        Value::Null => "-".to_string(),
        Value::String(s) => clean(s),
        Value::Array(_) => list(v),
        other => clean(&other.to_string()),
    }
}

/// An array as "a,b", "-" when empty.
fn list(v: &Value) -> String {
    match v.as_array() {
        Some(a) if !a.is_empty() => a.iter().map(cell).collect::<Vec<_>>().join(","),
        _ => "-".to_string(),
    }
}

/// "cause (reason)", or just "cause".
fn with_reason(cause: &Value, reason: &Value) -> String {
    if reason.is_null() {
        cell(cause)
    } else {
        format!("{} ({})", cell(cause), cell(reason))
    }
}

/// Server text made safe for a terminal and a table: control characters
/// (newlines, escapes) become spaces.
fn clean(s: &str) -> String {
    s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
}

/// Plain columns separated by two spaces, headers first; "(none)" for no rows.
fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    if rows.is_empty() {
        return "(none)\n".to_string();
    }
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    let header: Vec<String> = headers.iter().map(|h| h.to_string()).collect();
    for row in std::iter::once(&header).chain(rows) {
        let mut line = String::new();
        for (i, (c, w)) in row.iter().zip(&widths).enumerate() {
            if i > 0 {
                line.push_str("  ");
            }
            line.push_str(c);
            line.extend(std::iter::repeat_n(' ', w.saturating_sub(c.chars().count())));
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// "key  value" lines with the values aligned.
fn fields(f: &[(&str, String)]) -> String {
    let width = f.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    f.iter().map(|(k, v)| format!("{k:width$}  {v}\n")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_and_say_none() {
        let t = table(&["A", "LONGER"], &[vec!["xyz".into(), "1".into()], vec!["q".into(), "22".into()]]);
        assert_eq!(t, "A    LONGER\nxyz  1\nq    22\n");
        assert_eq!(table(&["A"], &[]), "(none)\n");
        assert_eq!(cell(&json!("a\nb\u{1b}[31m")), "a b [31m");
    }

    #[test]
    fn events_come_as_one_value_an_array_or_lines() {
        assert!(parse_events(r#"{"event_id":"a"}"#).unwrap().0.is_object());
        assert_eq!(parse_events(r#"[{"a":1},{"a":2}]"#).unwrap().0.as_array().unwrap().len(), 2);
        let (v, lines) = parse_events("{\"a\":1}\n\n{\"a\":2}\n  {\"a\":3}\n").unwrap();
        assert_eq!(v.as_array().unwrap().len(), 3);
        assert_eq!(lines, [1, 3, 4]);
        let err = format!("{:#}", parse_events("{\"a\":1}\n{\"a\":\n").unwrap_err());
        assert!(err.contains("line 3"), "{err}");
        assert!(parse_events("{\"a\":1}\n[1]").is_err());
        let err = format!("{:#}", parse_events("{\"a\":1}\n{\"resource\":\"r1\",\"resource\":\"r2\"}\n").unwrap_err());
        assert!(err.contains("duplicate key \"resource\"") && err.contains("line 2"), "{err}");
    }

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
    fn status_is_exit_1_with_the_body_when_not_ready() {
        let body = r#"{"ready":false,"now":"2026-03-01T00:00:00Z","paused":true,"policies":{"ecs":"ab12"}}"#;
        let done = status_done(StatusCode::SERVICE_UNAVAILABLE, body, false).unwrap();
        assert_eq!(done.code, 1);
        assert_eq!(done.note.as_deref(), Some("not ready (503 Service Unavailable)"));
        assert!(done.out.contains("ready     false\n") && done.out.contains("policies  ecs ab12\n"), "{}", done.out);
        let done = status_done(StatusCode::SERVICE_UNAVAILABLE, body, true).unwrap();
        assert_eq!(serde_json::from_str::<Value>(&done.out).unwrap()["now"], "2026-03-01T00:00:00Z");
        let err = status_done(StatusCode::UNAUTHORIZED, r#"{"error":"unknown token"}"#, false).unwrap_err();
        assert!(err.to_string().starts_with("token refused (401): unknown token"), "{err}");
        // A refused reload: ready, exit 0, the refusal shown and noted.
        let body = r#"{"ready":true,"clock":"system","last_reload":{"at":"2026-03-01T00:00:00Z","ok":false,"error":"x.toml:3:1: bad\nkey"}}"#;
        let done = status_done(StatusCode::OK, body, false).unwrap();
        assert_eq!(done.code, 0);
        assert!(done.out.contains("clock        system\n"), "{}", done.out);
        assert!(
            done.out.contains("last_reload  REFUSED at 2026-03-01T00:00:00Z: x.toml:3:1: bad key\n"),
            "{}",
            done.out
        );
        assert!(done.note.as_deref().unwrap().starts_with("last reload REFUSED at 2026-03-01T00:00:00Z: x.toml"));
        let err = status_done(StatusCode::SERVICE_UNAVAILABLE, "upstream down", false).unwrap_err();
        assert!(format!("{err:#}").starts_with("/readyz answered 503 Service Unavailable with something"), "{err:#}");
    }

    #[test]
    fn the_last_reload_reads_as_one_line() {
        assert_eq!(show_reload(&Value::Null), "none since start");
        let ok = json!({"at": "T", "ok": true, "changed": ["ecs", "vm"], "added": [], "removed": ["old"]});
        assert_eq!(show_reload(&ok), "ok at T: changed ecs,vm; removed old");
        let same = json!({"at": "T", "ok": true, "changed": [], "added": [], "removed": []});
        assert_eq!(show_reload(&same), "ok at T: no policy changed");
        assert_eq!(show_reload(&json!({"at": "T", "ok": false, "error": "e"})), "REFUSED at T: e");
    }

    #[test]
    fn metrics_text_becomes_json_samples() {
        let text = "# HELP a_total Things.\n# TYPE a_total counter\na_total{type=\"x\\\"y\",le=\"+Inf\"} 3\n\
                    b 0.25 1700000000\nc{} NaN\nd{k=\"a\\nb\\\\\"} -Inf\n";
        let v = metrics_json(text).unwrap();
        assert_eq!(
            v,
            json!({"samples": [
                {"name": "a_total", "labels": {"type": "x\"y", "le": "+Inf"}, "value": 3},
                {"name": "b", "labels": {}, "value": 0.25},
                {"name": "c", "labels": {}, "value": "NaN"},
                {"name": "d", "labels": {"k": "a\nb\\"}, "value": "-Inf"},
            ]})
        );
        assert!(metrics_json("ok\n").is_err());
        assert!(metrics_json("a{k=\"v} 1\n").is_err());
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
        let id = generated_event_id("placed", &"h".repeat(128));
        assert!(retentiond::ids::check_id(&id).is_ok(), "{id}");
        assert!(id.starts_with("ctl-hold-placed-hhh"));
    }
}
