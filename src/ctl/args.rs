//! `retentiond ctl`'s command line (clap): the global flags and one
//! subcommand per endpoint.

use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::{ArgGroup, Args, Subcommand};
use retentiond::domain::privacy::{RefusalGround, RequestState};
use retentiond::duration::Dur;
use retentiond::time::{parse_rfc3339, Timestamp};
use std::path::PathBuf;

/// The help heading of the flags every `ctl` subcommand takes.
const GLOBAL: &str = "Global options";

/// `retentiond ctl`'s flags. They are global, so they may also follow the
/// subcommand (`ctl resource r1 --json`).
#[derive(Args)]
pub struct CtlArgs {
    /// The daemon's API address: http://HOST:PORT, https://.., or HOST:PORT;
    /// without a port, port 7300 (the daemon's default), for https too. The
    /// daemon serves https when its [api] tls_cert_file is set.
    #[arg(
        long,
        global = true,
        env = "RETENTIOND_ADDR",
        hide_env_values = true,
        default_value = "http://127.0.0.1:7300",
        help_heading = GLOBAL
    )]
    pub(super) addr: String,
    /// The bearer token [env: RETENTIOND_TOKEN]. Visible in `ps`: prefer
    /// --token-file or the variable.
    #[arg(long, global = true, conflicts_with = "token_file", help_heading = GLOBAL)]
    pub(super) token: Option<String>,
    /// A file holding the bearer token (surrounding whitespace ignored)
    /// [env: RETENTIOND_TOKEN_FILE].
    #[arg(long, global = true, help_heading = GLOBAL)]
    pub(super) token_file: Option<PathBuf>,
    /// For an https:// address: a PEM file of the CA certificate(s) that
    /// signed the daemon's certificate, trusted instead of the system's.
    #[arg(long, global = true, env = "RETENTIOND_CA_FILE", value_name = "FILE", help_heading = GLOBAL)]
    pub(super) ca_file: Option<PathBuf>,
    /// For an https:// address whose daemon asks for client certificates
    /// ([api] tls_client_ca_file): this client's certificate (PEM).
    #[arg(
        long,
        global = true,
        env = "RETENTIOND_CLIENT_CERT",
        value_name = "FILE",
        requires = "client_key",
        help_heading = GLOBAL
    )]
    pub(super) client_cert: Option<PathBuf>,
    /// The private key of --client-cert (PEM).
    #[arg(
        long,
        global = true,
        env = "RETENTIOND_CLIENT_KEY",
        value_name = "FILE",
        requires = "client_cert",
        help_heading = GLOBAL
    )]
    pub(super) client_key: Option<PathBuf>,
    /// Print the server's JSON answer (pretty) instead of tables.
    #[arg(long, global = true, help_heading = GLOBAL)]
    pub(super) json: bool,
    /// Give up on a request after this long ("30s", "2m").
    #[arg(long, global = true, default_value = "30s", value_parser = parse_dur, help_heading = GLOBAL)]
    pub(super) timeout: Dur,
    #[command(subcommand)]
    pub(super) command: CtlCommand,
}

/// One subcommand per endpoint.
#[derive(Subcommand)]
pub(super) enum CtlCommand {
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
    /// Place, release or list legal holds (posts a hold.placed / hold.released
    /// event; lists from GET /v1/holds).
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
    /// Call a resource's stuck copies again (POST /v1/admin/retry), or,
    /// with --tenant and --subject instead of RESOURCE, a subject's stuck
    /// personal-store calls (POST /v1/admin/retry-subject).
    Retry {
        /// The resource id.
        #[arg(value_parser = parse_id, required_unless_present = "subject", conflicts_with = "subject")]
        resource: Option<String>,
        /// The subject's tenant (with --subject).
        #[arg(long, value_parser = parse_id, requires = "subject")]
        tenant: Option<String>,
        /// The subject whose personal data is stuck (the tenant's id for the
        /// account holder); needs --tenant.
        #[arg(long, value_parser = parse_id, requires = "tenant")]
        subject: Option<String>,
        /// Only the copy (or personal-store calls) in this store.
        #[arg(long, value_parser = parse_id)]
        store: Option<String>,
    },
    /// Privacy requests of account holders and users (issue 12): show,
    /// list, decide, and fetch a receipt.
    Request {
        #[command(subcommand)]
        command: RequestCommand,
    },
    /// A subject's personal data (GET /v1/subjects/TENANT/SUBJECT): each
    /// class, its copy in each store, what is kept and until when, and the
    /// subject's requests.
    Subject {
        #[command(subcommand)]
        command: SubjectCommand,
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
pub(super) enum HoldCommand {
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
        /// When someone should decide whether the hold is still needed
        /// (RFC 3339). Past it the hold stays in force and is reported as due
        /// for review (`ctl hold list`, a metric, an audit record).
        #[arg(long, value_name = "RFC3339", value_parser = parse_time)]
        review_at: Option<Timestamp>,
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
    /// Every hold in force (GET /v1/holds), read page by page: tenant,
    /// resource (none for a tenant-wide hold), authority, reason, when
    /// placed, and the review date with whether it is due.
    List {
        /// Only this tenant's holds.
        #[arg(long, value_parser = parse_id)]
        tenant: Option<String>,
        /// Only holds placed by this authority (exactly as placed).
        #[arg(long)]
        authority: Option<String>,
    },
}

/// `ctl request ...`.
#[derive(Subcommand)]
pub(super) enum RequestCommand {
    /// One request (GET /v1/requests/ID): state, due date and overdue flag,
    /// decision, the holds deferring it, and what it did to each class.
    Show {
        /// The request id.
        #[arg(value_parser = parse_id)]
        id: String,
    },
    /// Requests by id (GET /v1/requests), read page by page.
    List {
        /// Only requests in this state; `open`: not yet completed or
        /// refused; `overdue`: open and past their due date.
        #[arg(long, value_name = "STATE", value_parser = request_state())]
        state: Option<String>,
        /// Only requests due strictly before this time (RFC 3339).
        #[arg(long, value_name = "RFC3339", value_parser = parse_time)]
        due_before: Option<Timestamp>,
    },
    /// The receipt of an answered request (GET /v1/certificates/requests/ID)
    /// as JSON, for `retentiond audit receipt`.
    Receipt {
        /// The request id.
        #[arg(value_parser = parse_id)]
        id: String,
        /// Write it to this file instead of standard output.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Decide a request: posts a request.decided event (operator or admin).
    /// Exit 1 if the daemon rejects it (an unverified request cannot be
    /// executed; a closed one cannot be decided again).
    #[command(group(ArgGroup::new("decision").required(true).args(["execute", "refuse"])))]
    Decide {
        /// The request id.
        #[arg(value_parser = parse_id)]
        id: String,
        /// Carry it out.
        #[arg(long)]
        execute: bool,
        /// Refuse it on this ground (privacy policy 5.6.2, 5.8).
        #[arg(long, value_name = "GROUND", value_parser = refusal_ground())]
        refuse: Option<RefusalGround>,
        #[command(flatten)]
        event: EventOpts,
    },
}

/// `ctl subject ...`.
#[derive(Subcommand)]
pub(super) enum SubjectCommand {
    /// Show a subject: its classes, their copies in each store, its requests.
    Show {
        /// The tenant.
        #[arg(value_parser = parse_id)]
        tenant: String,
        /// The subject; the account holder (whose id is the tenant's) when
        /// left out.
        #[arg(value_parser = parse_id)]
        subject: Option<String>,
    },
}

/// `--state` of `ctl request list`: a request state, `open` or `overdue`.
fn request_state() -> PossibleValuesParser {
    let states = RequestState::ALL.iter().map(|s| s.as_str());
    PossibleValuesParser::new(["open", "overdue"].into_iter().chain(states))
}

/// `--refuse`: one of the grounds of the closed list, offered by name.
fn refusal_ground() -> impl TypedValueParser<Value = RefusalGround> {
    PossibleValuesParser::new(RefusalGround::ALL.iter().map(|g| g.as_str()))
        .try_map(|s| RefusalGround::parse(&s).ok_or("not a refusal ground"))
}

/// What a hold covers: one resource, or (without --resource) the whole tenant.
#[derive(Args)]
pub(super) struct HoldTarget {
    /// The resource; leave out to cover the whole tenant.
    #[arg(long, value_parser = parse_id)]
    pub(super) resource: Option<String>,
    /// The tenant; with --resource it may be left out and is then read from
    /// the resource.
    #[arg(long, value_parser = parse_id, required_unless_present = "resource")]
    pub(super) tenant: Option<String>,
}

/// The envelope of an event ctl builds itself.
#[derive(Args)]
pub(super) struct EventOpts {
    /// When it happened (RFC 3339); default: the daemon's clock (from
    /// /readyz; this machine's only for a daemon too old to report it).
    #[arg(long, value_parser = parse_time)]
    pub(super) at: Option<Timestamp>,
    /// The event id; give the one printed by a failed attempt to retry it
    /// without posting it twice.
    #[arg(long, value_parser = parse_id)]
    pub(super) event_id: Option<String>,
}

/// `ctl clock ...`.
#[derive(Subcommand)]
pub(super) enum ClockCommand {
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
pub(super) fn parse_id(s: &str) -> Result<String, String> {
    retentiond::ids::check_stored_id(s).map(|()| s.to_string()).map_err(str::to_string)
}

pub(super) fn parse_time(s: &str) -> Result<Timestamp, String> {
    parse_rfc3339(s).map_err(|e| e.to_string())
}

pub(super) fn parse_dur(s: &str) -> Result<Dur, String> {
    s.parse()
}
