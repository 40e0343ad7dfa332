//! Executors: the only code in the daemon that destroys customer data.
//!
//! A store's config names one executor (`fs`, `command` or `http`) and
//! the scheduler calls [`Executor::run`] when a copy's deadline passes. A
//! deletion that goes wrong cannot be undone, so everything here fails
//! closed: a spec is re-validated before every run (a spec that skipped
//! [`ExecutorSpec::validate`] still cannot run), ids are re-checked even
//! though the API already checked them, and `Ok(())` is returned only when
//! the copy is verifiably gone (or restricted). Anything surprising is an
//! [`ExecError`] for a human to look at, never a silent success.

use std::fmt;
use std::io;
use std::path::PathBuf;

use crate::duration::Dur;
use crate::outbound::{ClientError, HttpSpec, PostError, ProcessError, SecretError};

mod command;
mod fs;
mod http;

pub use command::CommandExecutor;
pub use fs::FsExecutor;
pub use http::HttpExecutor;

/// What the daemon asks an executor to do to one copy.
///
/// `Delete` and `Purge` both end with the copy gone; they are distinct so a
/// `command` executor can treat them differently (`{action}` placeholder),
/// e.g. a soft delete versus scrubbing backups. `Restrict` blocks processing
/// without deleting, which not every executor can do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Remove the copy.
    Delete,
    /// Restrict processing of the copy without removing it.
    Restrict,
    /// Remove the copy for good, including anything a `Delete` may keep.
    Purge,
}

impl Action {
    /// The lowercase word used in config, logs and the `{action}`
    /// placeholder, so operators' scripts see the same spelling everywhere.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Delete => "delete",
            Action::Restrict => "restrict",
            Action::Purge => "purge",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The one copy an action applies to. Every field is an id that passed
/// [`crate::ids::check_id`] when it was stored (or its alphabet rule,
/// [`crate::ids::check_stored_id`], before issue 9); executors check again
/// before building a path or an argument from it, because a wrong id here
/// deletes the wrong data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// The customer the data belongs to.
    pub tenant: String,
    /// The resource whose retention expired.
    pub resource: String,
    /// The configured store holding this copy.
    pub store: String,
    /// Which copy inside the store (primary, replica, backup, ...).
    pub copy: String,
}

/// An executor as written in a store's config (`executor = { kind = ... }`).
///
/// Unknown keys are rejected (a misspelt `timout` must not silently fall back
/// to the default). Serde's `deny_unknown_fields` is honoured for internally
/// tagged enums with struct variants, and for the `http` newtype variant by
/// [`HttpSpec`]'s own `deny_unknown_fields`; `tests::unknown_keys_are_rejected`
/// proves it for every variant.
#[derive(Clone, Debug, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum ExecutorSpec {
    /// Remove `root/path` from a local filesystem.
    Fs {
        /// Absolute directory every deletion must stay inside.
        root: PathBuf,
        /// Relative path template below `root`, e.g. `"{tenant}/{resource}"`.
        path: String,
        /// A file that must exist directly in `root` (a regular file, not a
        /// symlink) before any call, so an unmounted volume (an empty mount
        /// point) or a wrong root fails the call instead of every path in it
        /// looking "already deleted". Default `".retentiond-root"`; `""`
        /// turns the check off (`check-config` warns).
        #[serde(default = "default_marker")]
        marker: String,
    },
    /// Run an operator-supplied program (never through a shell).
    Command {
        /// Program and arguments; arguments may hold placeholders.
        argv: Vec<String>,
        /// How long the program may run before it is killed (default 5m).
        #[serde(default = "default_command_timeout")]
        timeout: Dur,
    },
    /// POST a signed JSON request to a deletion service (see [`HttpExecutor`]).
    Http(HttpSpec),
}

/// Default `fs` marker: a dot file, out of the way of tenant directories.
pub fn default_marker() -> String {
    fs::DEFAULT_MARKER.to_owned()
}

/// Default for `command` executors: long enough for a snapshot purge, short
/// enough that a hung script does not stall the deletion queue for hours.
fn default_command_timeout() -> Dur {
    Dur::from_secs(5 * 60)
}

impl ExecutorSpec {
    /// Static checks at config-load time, so a bad template is refused when
    /// the daemon starts rather than when the first deadline passes (or,
    /// worse, deletes more than one resource). Err is a one-line human
    /// message naming the bad part.
    pub fn validate(&self) -> Result<(), String> {
        match self {
            ExecutorSpec::Fs { root, path, marker } => fs::validate(root, path, marker),
            ExecutorSpec::Command { argv, timeout } => command::validate(argv, *timeout),
            ExecutorSpec::Http(spec) => spec.validate().map_err(|e| format!("http executor: {e}")),
        }
    }
}

/// A ready-to-run executor built from an [`ExecutorSpec`].
///
/// An enum rather than a trait object so the set of kinds is closed and
/// matched exhaustively; a new kind is one more variant.
#[derive(Clone, Debug)]
pub enum Executor {
    /// See [`FsExecutor`].
    Fs(FsExecutor),
    /// See [`CommandExecutor`].
    Command(CommandExecutor),
    /// See [`HttpExecutor`].
    Http(HttpExecutor),
}

impl Executor {
    /// Builds the executor for `spec`. Infallible so config loading stays in
    /// one place; a spec that would fail [`ExecutorSpec::validate`] is
    /// accepted here but every [`Executor::run`] then fails with
    /// [`ExecError::InvalidSpec`] without touching anything.
    pub fn from_spec(spec: &ExecutorSpec) -> Executor {
        match spec {
            ExecutorSpec::Fs { root, path, marker } => {
                Executor::Fs(FsExecutor::new(root.clone(), path.clone(), marker.clone()))
            }
            ExecutorSpec::Command { argv, timeout } => Executor::Command(CommandExecutor::new(argv.clone(), *timeout)),
            ExecutorSpec::Http(spec) => Executor::Http(HttpExecutor::new(spec.clone())),
        }
    }

    /// Performs `action` on the copy named by `target`. Ok(()) only when the
    /// copy is verifiably gone (or restricted); every doubt is an error so
    /// the scheduler retries and an operator sees it, instead of recording a
    /// deletion that did not happen.
    pub async fn run(&self, action: Action, target: &Target) -> Result<(), ExecError> {
        match self {
            Executor::Fs(e) => e.run(action, target).await,
            Executor::Command(e) => e.run(action, target).await,
            Executor::Http(e) => e.run(action, target).await,
        }
    }

    /// Short description for logs ("fs:/srv/data", "command:/usr/libexec/x",
    /// "http:https://purge.internal/v1/purge");
    /// names the executor without dumping the whole template.
    pub fn describe(&self) -> String {
        match self {
            Executor::Fs(e) => e.describe(),
            Executor::Command(e) => e.describe(),
            Executor::Http(e) => e.describe(),
        }
    }
}

/// Why an executor did not complete an action. The copy must then be treated
/// as still present. Display text names ids, paths and programs only, never
/// file contents or secrets (a command's own stderr excerpt is the one
/// exception: it is the operator's diagnostic, capped and with control
/// characters escaped; an HTTP answer's body is never included).
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// The spec fails [`ExecutorSpec::validate`]; nothing was attempted.
    #[error("executor spec is invalid: {reason}")]
    InvalidSpec {
        /// The validation message.
        reason: String,
    },
    /// A target id is not a valid id, so no path or argument is built from it.
    #[error("target {field} is not a valid id: {reason}")]
    InvalidTarget {
        /// Which field of [`Target`] (`tenant`, `resource`, `store`, `copy`).
        field: &'static str,
        /// The rule it breaks.
        reason: &'static str,
    },
    /// The executor kind cannot perform this action (e.g. `fs` cannot
    /// restrict); reported rather than silently treated as done.
    #[error("{kind} executor does not support action {action}")]
    UnsupportedAction {
        /// The action requested.
        action: Action,
        /// The executor kind (`fs`, `command`, `http`).
        kind: &'static str,
    },
    /// The `fs` root does not exist or cannot be inspected; an unmounted
    /// volume must not be mistaken for "already deleted".
    #[error("fs root {} is unavailable: {source}", root.display())]
    RootUnavailable {
        /// The configured root.
        root: PathBuf,
        /// The underlying OS error.
        source: io::Error,
    },
    /// The `fs` root exists but is not a directory.
    #[error("fs root {} is not a directory", root.display())]
    RootNotDirectory {
        /// The configured root.
        root: PathBuf,
    },
    /// The `fs` root has no marker file: most likely the volume is not
    /// mounted and `root` is the empty mount point, where every path would
    /// look already deleted. Nothing was touched; the call is retried.
    #[error(
        "fs root {} has no marker file {marker:?}: is the volume mounted? \
         (create the marker on the mounted volume, never on the bare mount point)",
        root.display()
    )]
    MarkerMissing {
        /// The configured root.
        root: PathBuf,
        /// The marker's file name.
        marker: String,
    },
    /// The marker exists but is not a regular file directly in the root (a
    /// symlink could point at a file that exists while the volume does not).
    #[error("fs marker {} is not a regular file (symlinks are not followed)", path.display())]
    MarkerNotFile {
        /// `root/marker`.
        path: PathBuf,
    },
    /// The rendered path is the marker itself (a resource id equal to the
    /// marker's name): removing it would disable the check for every other
    /// deletion, so it is refused.
    #[error("path {} is the fs root's marker; refusing to delete it", path.display())]
    WouldRemoveMarker {
        /// `root/marker`.
        path: PathBuf,
    },
    /// The target's parent resolves (through a symlink) outside the root;
    /// nothing was touched.
    #[error(
        "path {} resolves to {} outside root {}; refusing to delete",
        path.display(),
        resolved.display(),
        root.display()
    )]
    PathEscapesRoot {
        /// The path as built from the template (`root/...`).
        path: PathBuf,
        /// The canonical form of its parent directory.
        resolved: PathBuf,
        /// The canonical root.
        root: PathBuf,
    },
    /// A filesystem operation failed.
    #[error("{op} {} failed: {source}", path.display())]
    Io {
        /// What was being done (`canonicalize`, `remove_dir_all`, ...).
        op: &'static str,
        /// The path it was done to.
        path: PathBuf,
        /// The underlying OS error.
        source: io::Error,
    },
    /// The removal reported success but the path still exists afterwards
    /// (recreated concurrently, or a filesystem that lies).
    #[error("{} still exists after removal", path.display())]
    StillPresent {
        /// The path that should be gone.
        path: PathBuf,
    },
    /// The blocking worker running filesystem calls panicked or was
    /// cancelled; the outcome is unknown.
    #[error("filesystem worker failed: {reason}")]
    TaskFailed {
        /// The join error.
        reason: String,
    },
    /// An argument would start with `-` only because of an id (e.g. tenant
    /// `-rf`), so the program could parse it as an option. Refused unless the
    /// operator puts a literal `--` argument before it.
    #[error(
        "argument {index} of {program} would start with '-' from the {field} id; \
         put a \"--\" argument before it in argv"
    )]
    OptionLikeArgument {
        /// The program (argv[0]).
        program: String,
        /// Position in argv.
        index: usize,
        /// The id that supplied the leading `-`.
        field: &'static str,
    },
    /// The program could not be started (not found, not executable, ...).
    #[error("cannot start {program}: {source}")]
    Spawn {
        /// The program (argv[0]).
        program: String,
        /// The underlying OS error.
        source: io::Error,
    },
    /// Waiting for the program failed; its outcome is unknown.
    #[error("waiting for {program} failed: {source}")]
    Wait {
        /// The program (argv[0]).
        program: String,
        /// The underlying OS error.
        source: io::Error,
    },
    /// The program ran longer than its timeout and was killed and reaped.
    #[error("{program} timed out after {after} and was killed")]
    Timeout {
        /// The program (argv[0]).
        program: String,
        /// The configured timeout.
        after: Dur,
    },
    /// The program exited with a non-zero code.
    #[error("{program} exited with code {code}{}", fmt_stderr(stderr))]
    CommandFailed {
        /// The program (argv[0]).
        program: String,
        /// Its exit code.
        code: i32,
        /// The tail of its stderr (at most ~2 KiB, control characters escaped).
        stderr: String,
    },
    /// The program was terminated by a signal.
    #[error(
        "{program} was killed by signal {}{}",
        signal.map_or_else(|| "(unknown)".to_owned(), |s| s.to_string()),
        fmt_stderr(stderr)
    )]
    CommandKilled {
        /// The program (argv[0]).
        program: String,
        /// The signal number, when the platform reports one.
        signal: Option<i32>,
        /// The tail of its stderr (at most ~2 KiB, control characters escaped).
        stderr: String,
    },
    /// The `http` executor's client cannot be built on this machine (an
    /// `https://` URL and no CA certificates); nothing was sent.
    #[error("executor spec is invalid: {0}")]
    HttpClient(#[source] ClientError),
    /// The `http` executor's request body could not be encoded (it holds
    /// only ids, so this does not happen); nothing was sent.
    #[error("executor spec is invalid: cannot encode request body: {0}")]
    RequestBody(#[source] serde_json::Error),
    /// The `http` executor's HMAC secret could not be read, or is empty;
    /// nothing was sent.
    #[error(transparent)]
    Secret(SecretError),
    /// The request could not be completed (connection refused, reset, DNS,
    /// ...); whether the service acted is unknown, so it is retried.
    #[error("request to {endpoint} failed: {}", crate::outbound::http::error_chain(source))]
    HttpRequest {
        /// The service's URL without query.
        endpoint: String,
        /// The transport error (without the URL, which may hold a query).
        source: reqwest::Error,
    },
    /// The service did not answer within the timeout; whether it acted is
    /// unknown, so it is retried (with the same idempotency key).
    #[error("request to {endpoint} timed out after {after}")]
    HttpTimeout {
        /// The service's URL without query.
        endpoint: String,
        /// The configured timeout.
        after: Dur,
    },
    /// The service answered with a status other than 2xx (or with 202
    /// Accepted, which is not done yet); redirects are not followed.
    #[error("{endpoint} answered HTTP {status}")]
    HttpStatus {
        /// The service's URL without query.
        endpoint: String,
        /// The status code.
        status: u16,
    },
}

/// The signed POST's failures, in the executor's words (`executor spec is
/// invalid: http executor: ...` for a spec that skipped validation).
impl From<PostError> for ExecError {
    fn from(e: PostError) -> ExecError {
        match e {
            PostError::Spec(e) => ExecError::InvalidSpec { reason: format!("http executor: {e}") },
            PostError::Client(e) => ExecError::HttpClient(e),
            PostError::Secret(e) => ExecError::Secret(e),
            PostError::Request { endpoint, source } => ExecError::HttpRequest { endpoint, source },
            PostError::Timeout { endpoint, after } => ExecError::HttpTimeout { endpoint, after },
            PostError::Status { endpoint, status } => ExecError::HttpStatus { endpoint, status },
        }
    }
}

/// The child process's failures, in the same words.
impl From<ProcessError> for ExecError {
    fn from(e: ProcessError) -> ExecError {
        match e {
            ProcessError::Spawn { program, source } => ExecError::Spawn { program, source },
            ProcessError::Wait { program, source } => ExecError::Wait { program, source },
            ProcessError::Timeout { program, after } => ExecError::Timeout { program, after },
        }
    }
}

fn fmt_stderr(stderr: &str) -> String {
    if stderr.is_empty() {
        String::new()
    } else {
        format!("; stderr: {stderr}")
    }
}

/// A placeholder an executor template may contain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Placeholder {
    Tenant,
    Resource,
    Store,
    Copy,
    Action,
}

impl Placeholder {
    fn parse(name: &str) -> Option<Placeholder> {
        Some(match name {
            "tenant" => Placeholder::Tenant,
            "resource" => Placeholder::Resource,
            "store" => Placeholder::Store,
            "copy" => Placeholder::Copy,
            "action" => Placeholder::Action,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Placeholder::Tenant => "tenant",
            Placeholder::Resource => "resource",
            Placeholder::Store => "store",
            Placeholder::Copy => "copy",
            Placeholder::Action => "action",
        }
    }

    /// The value this placeholder stands for. Id fields are re-checked with
    /// [`crate::ids::check_stored_id`] so nothing unchecked reaches a path or
    /// argv (the alphabet rule: ids stored before new ids were refused a
    /// leading `-` must still be deletable; `render_args` keeps them from
    /// becoming options).
    fn value(self, action: Action, target: &Target) -> Result<&str, ExecError> {
        let value = match self {
            Placeholder::Action => return Ok(action.as_str()),
            Placeholder::Tenant => &target.tenant,
            Placeholder::Resource => &target.resource,
            Placeholder::Store => &target.store,
            Placeholder::Copy => &target.copy,
        };
        crate::ids::check_stored_id(value).map_err(|reason| ExecError::InvalidTarget { field: self.name(), reason })?;
        Ok(value)
    }
}

/// One piece of a parsed template.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Piece<'a> {
    Literal(&'a str),
    Placeholder(Placeholder),
}

/// How many id placeholders (`{tenant}` `{resource}` `{store}` `{copy}`)
/// a piece of template holds. Ids may contain `- . _ :`, so two ids joined
/// in one path component or argument are ambiguous (`{tenant}-{resource}`
/// is `acme-db` + `1` and `acme` + `db-1` alike): at most one is allowed.
fn id_placeholders(pieces: &[Piece<'_>]) -> usize {
    pieces.iter().filter(|p| matches!(p, Piece::Placeholder(ph) if *ph != Placeholder::Action)).count()
}

/// Splits a template into literal text and `{name}` placeholders.
///
/// There is no escape for literal braces: an unknown `{x}` or a stray brace
/// is an error, so a typo like `{tennant}` can never be passed on verbatim.
fn parse_template(template: &str) -> Result<Vec<Piece<'_>>, String> {
    let mut pieces = Vec::new();
    let mut rest = template;
    while !rest.is_empty() {
        match rest.find(['{', '}']) {
            None => {
                pieces.push(Piece::Literal(rest));
                break;
            }
            Some(i) => {
                if i > 0 {
                    pieces.push(Piece::Literal(&rest[..i]));
                }
                if rest[i..].starts_with('}') {
                    return Err(format!("unmatched '}}' in {template:?}"));
                }
                let after = &rest[i + 1..];
                let close = after
                    .find(['{', '}'])
                    .filter(|&j| after[j..].starts_with('}'))
                    .ok_or_else(|| format!("unclosed '{{' in {template:?}"))?;
                let name = &after[..close];
                let ph = Placeholder::parse(name).ok_or_else(|| {
                    format!(
                        "unknown placeholder {{{name}}} in {template:?} \
                         (known: {{tenant}} {{resource}} {{store}} {{copy}} {{action}})"
                    )
                })?;
                pieces.push(Piece::Placeholder(ph));
                rest = &after[close + 1..];
            }
        }
    }
    Ok(pieces)
}

/// Substitutes placeholders. Fails if any id used is not a valid id.
fn render(pieces: &[Piece<'_>], action: Action, target: &Target) -> Result<String, ExecError> {
    let mut out = String::new();
    for piece in pieces {
        match piece {
            Piece::Literal(s) => out.push_str(s),
            Piece::Placeholder(p) => out.push_str(p.value(action, target)?),
        }
    }
    Ok(out)
}

fn contains(pieces: &[Piece<'_>], wanted: Placeholder) -> bool {
    pieces.contains(&Piece::Placeholder(wanted))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    struct Wrapper {
        executor: ExecutorSpec,
    }

    fn parse(toml_text: &str) -> Result<ExecutorSpec, toml::de::Error> {
        toml::from_str::<Wrapper>(toml_text).map(|w| w.executor)
    }

    #[test]
    fn parses_both_kinds_with_default_timeout() {
        let fs = parse(r#"executor = { kind = "fs", root = "/srv/d", path = "{tenant}/{resource}" }"#).unwrap();
        assert_eq!(
            fs,
            ExecutorSpec::Fs {
                root: "/srv/d".into(),
                path: "{tenant}/{resource}".into(),
                marker: ".retentiond-root".into()
            }
        );
        assert!(fs.validate().is_ok());

        let cmd = parse(r#"executor = { kind = "command", argv = ["/bin/x", "{resource}"] }"#).unwrap();
        assert_eq!(
            cmd,
            ExecutorSpec::Command { argv: vec!["/bin/x".into(), "{resource}".into()], timeout: Dur::from_secs(300) }
        );
        let cmd =
            parse(r#"executor = { kind = "command", argv = ["/bin/x", "{resource}"], timeout = "90s" }"#).unwrap();
        assert!(matches!(cmd, ExecutorSpec::Command { timeout, .. } if timeout == Dur::from_secs(90)));
    }

    #[test]
    fn unknown_keys_are_rejected() {
        for text in [
            r#"executor = { kind = "fs", root = "/srv/d", path = "{resource}", recursive = true }"#,
            r#"executor = { kind = "command", argv = ["/bin/x", "{resource}"], timout = "1s" }"#,
            r#"executor = { kind = "http", url = "http://h/p", secret_env = "K", timout = "1s" }"#,
            r#"executor = { kind = "http", url = "http://h/p", secret_env = "K", secret = "hunter2" }"#,
        ] {
            let err = parse(text).expect_err(text).to_string();
            assert!(err.contains("unknown field"), "{text}: {err}");
        }
        // Unknown kinds and missing required keys are errors too.
        assert!(parse(r#"executor = { kind = "ftp", url = "x" }"#).is_err());
        assert!(parse(r#"executor = { kind = "http", secret_env = "K" }"#).is_err());
        assert!(parse(r#"executor = { kind = "fs", root = "/srv/d" }"#).is_err());
        assert!(parse(r#"executor = { root = "/srv/d", path = "{resource}" }"#).is_err());
    }

    #[test]
    fn spec_round_trips_through_toml() {
        #[derive(serde::Serialize)]
        struct W<'a> {
            executor: &'a ExecutorSpec,
        }
        for spec in [
            ExecutorSpec::Fs { root: "/srv/d".into(), path: "{resource}".into(), marker: "".into() },
            ExecutorSpec::Fs { root: "/srv/d".into(), path: "{resource}".into(), marker: "MOUNTED".into() },
            ExecutorSpec::Command { argv: vec!["/bin/x".into(), "--r={resource}".into()], timeout: Dur::from_secs(60) },
            ExecutorSpec::Http(HttpSpec {
                url: "http://127.0.0.1:8443/v1/purge".into(),
                secret_file: Some("/etc/retentiond/purge.key".into()),
                secret_env: None,
                timeout: Dur::from_secs(7),
            }),
            ExecutorSpec::Http(HttpSpec {
                url: "http://127.0.0.1:8443/v1/purge".into(),
                secret_file: None,
                secret_env: Some("RETENTIOND_PURGE_KEY".into()),
                timeout: Dur::from_secs(30),
            }),
        ] {
            let text = toml::to_string(&W { executor: &spec }).unwrap();
            assert_eq!(parse(&text).unwrap(), spec, "{text}");
        }
    }

    #[test]
    fn parses_http_with_default_timeout() {
        let spec =
            parse(r#"executor = { kind = "http", url = "http://127.0.0.1:8443/v1/purge", secret_file = "/etc/k" }"#)
                .unwrap();
        assert_eq!(
            spec,
            ExecutorSpec::Http(HttpSpec {
                url: "http://127.0.0.1:8443/v1/purge".into(),
                secret_file: Some("/etc/k".into()),
                secret_env: None,
                timeout: Dur::from_secs(30),
            })
        );
        assert!(spec.validate().is_ok());
        let spec =
            parse(r#"executor = { kind = "http", url = "http://h/p", secret_env = "K", timeout = "300ms" }"#).unwrap();
        assert!(
            matches!(spec, ExecutorSpec::Http(HttpSpec { timeout, .. }) if timeout == Dur(std::time::Duration::from_millis(300)))
        );
        assert!(spec.validate().is_ok());
    }

    #[test]
    fn template_parsing() {
        assert_eq!(
            parse_template("--t={tenant}.x").unwrap(),
            vec![Piece::Literal("--t="), Piece::Placeholder(Placeholder::Tenant), Piece::Literal(".x")]
        );
        assert_eq!(parse_template("").unwrap(), vec![]);
        for bad in ["{x}", "{}", "{tenant", "tenant}", "{{tenant}}", "{ten{ant}", "a}b{"] {
            assert!(parse_template(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn action_spelling() {
        for (a, s) in [(Action::Delete, "delete"), (Action::Restrict, "restrict"), (Action::Purge, "purge")] {
            assert_eq!(a.as_str(), s);
            assert_eq!(serde_json::to_string(&a).unwrap(), format!("\"{s}\""));
        }
    }

    #[test]
    fn describe_names_kind_and_location() {
        let fs = Executor::from_spec(&ExecutorSpec::Fs {
            root: "/srv/data".into(),
            path: "{resource}".into(),
            marker: default_marker(),
        });
        assert_eq!(fs.describe(), "fs:/srv/data");
        let cmd = Executor::from_spec(&ExecutorSpec::Command {
            argv: vec!["/usr/libexec/x".into(), "{resource}".into()],
            timeout: Dur::from_secs(1),
        });
        assert_eq!(cmd.describe(), "command:/usr/libexec/x");
        let http = Executor::from_spec(&ExecutorSpec::Http(HttpSpec {
            url: "http://127.0.0.1:8443/v1/purge?k=v".into(),
            secret_file: None,
            secret_env: Some("K".into()),
            timeout: Dur::from_secs(1),
        }));
        assert_eq!(http.describe(), "http:http://127.0.0.1:8443/v1/purge");
    }

    #[test]
    fn joined_ids_are_refused_because_they_are_ambiguous() {
        let fs = |path: &str| {
            ExecutorSpec::Fs { root: "/srv/d".into(), path: path.into(), marker: default_marker() }.validate()
        };
        let cmd = |arg: &str| {
            ExecutorSpec::Command { argv: vec!["/bin/x".into(), arg.into()], timeout: Dur::from_secs(60) }.validate()
        };
        for bad in ["{tenant}-{resource}", "x/{tenant}.{resource}", "{resource}{copy}"] {
            assert!(fs(bad).unwrap_err().contains("joins several ids"), "{bad}");
        }
        assert!(cmd("{tenant}:{resource}").unwrap_err().contains("joins several ids"));
        // One id with fixed text around it is unambiguous, and so is {action}.
        assert!(fs("{tenant}/{resource}.img").is_ok());
        assert!(fs("{tenant}/{store}/{resource}").is_ok());
        assert!(cmd("--resource={resource}").is_ok());
        assert!(cmd("{action}-{resource}").is_ok());
        assert!(cmd("{store}/{copy}/{resource}").is_ok(), "ids never contain '/'");
    }
}
