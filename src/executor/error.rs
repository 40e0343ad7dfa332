//! Why an executor refused a spec or did not complete an action.

use std::io;
use std::path::PathBuf;

use super::{Action, CommandSpecError, DataKind, FsSpecError};
use crate::duration::Dur;
use crate::outbound::{ClientError, HttpSpecError, PostError, ProcessError, SecretError};

/// Why an executor spec is refused, at config load or (for a spec that
/// skipped [`super::ExecutorSpec::validate`]) before a run. Display is the
/// one-line message the config error shows after `stores.NAME.executor: `,
/// starting with the executor kind.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// An `fs` executor's spec.
    #[error("fs executor: {0}")]
    Fs(#[from] FsSpecError),
    /// A `command` executor's spec.
    #[error("command executor: {0}")]
    Command(#[from] CommandSpecError),
    /// An `http` executor's spec.
    #[error("http executor: {0}")]
    Http(#[from] HttpSpecError),
}

/// Why an executor did not complete an action. The copy must then be treated
/// as still present. Display text names ids, paths and programs only, never
/// file contents or secrets (a command's own stderr excerpt is the one
/// exception: it is the operator's diagnostic, capped and with control
/// characters escaped; an HTTP answer's body is never included).
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// The spec fails [`super::ExecutorSpec::validate`]; nothing was attempted.
    #[error("executor spec is invalid: {reason}")]
    InvalidSpec {
        /// What is wrong with it.
        #[source]
        reason: SpecError,
    },
    /// A target id is not a valid id, so no path or argument is built from it.
    #[error("target {field} is not a valid id: {reason}")]
    InvalidTarget {
        /// Which field of [`super::Target`] (`tenant`, `store`, `resource`,
        /// `copy`, `subject`, `class`).
        field: &'static str,
        /// The rule it breaks.
        reason: &'static str,
    },
    /// A template (or body) needs a field the target's kind of data does not
    /// have, e.g. `{resource}` for a subject's personal data: a business
    /// store's executor was handed personal data or the other way round.
    /// Refused rather than rendered as an empty string; nothing was touched.
    #[error("target is {data} data, which has no {field}")]
    NotInTarget {
        /// The missing field (`resource`, `copy`, `subject`, `class`).
        field: &'static str,
        /// The target's kind of data.
        data: DataKind,
    },
    /// The action does not exist for the target's kind of data (a purge of
    /// personal data, an anonymisation of a business copy; see
    /// [`Action::applies_to`]); nothing was touched.
    #[error("action {action} does not apply to {data} data")]
    ActionNotForData {
        /// The action requested.
        action: Action,
        /// The target's kind of data.
        data: DataKind,
    },
    /// The executor kind cannot perform this action (e.g. `fs` cannot
    /// restrict or anonymise); reported rather than silently treated as done.
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
    #[error("filesystem worker failed: {source}")]
    TaskFailed {
        /// The join error.
        source: tokio::task::JoinError,
    },
    /// An argument would start with `-` only because of an id (e.g. tenant
    /// `-rf`), so the program could parse it as an option. Refused unless the
    /// operator puts a literal `--` argument before it.
    #[error(
        "argument {index} of {program} would start with '-' from the {field} id; \
         put a \"--\" argument before it in argv"
    )]
    OptionLikeArgument {
        /// The program (`argv[0]`).
        program: String,
        /// Position in argv.
        index: usize,
        /// The id that supplied the leading `-`.
        field: &'static str,
    },
    /// The program did not run to its end: it could not be started,
    /// waiting for it failed, or it outlived its timeout and was killed and
    /// reaped. These kinds, and their words, are the sandboxed child's
    /// ([`ProcessError`]), defined once for every caller that runs one; how
    /// a program that did run to its end exited is the executor's to judge
    /// ([`ExecError::CommandFailed`], [`ExecError::CommandKilled`]).
    #[error(transparent)]
    Process(#[from] ProcessError),
    /// The program exited with a non-zero code.
    #[error("{program} exited with code {code}{}", fmt_stderr(stderr))]
    CommandFailed {
        /// The program (`argv[0]`).
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
        /// The program (`argv[0]`).
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
            PostError::Spec(e) => ExecError::InvalidSpec { reason: SpecError::Http(e) },
            PostError::Client(e) => ExecError::HttpClient(e),
            PostError::Secret(e) => ExecError::Secret(e),
            PostError::Request { endpoint, source } => ExecError::HttpRequest { endpoint, source },
            PostError::Timeout { endpoint, after } => ExecError::HttpTimeout { endpoint, after },
            PostError::Status { endpoint, status } => ExecError::HttpStatus { endpoint, status },
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    /// The words recorded in `copy.failed` and `copy.stuck` for a program
    /// that did not run to its end are the sandboxed child's, byte for byte
    /// as the executor wrote them before it took them from
    /// [`ProcessError`], and the OS error stays reachable as the source.
    #[test]
    fn a_child_that_did_not_run_to_its_end_reads_as_before() {
        let os = || io::Error::from(io::ErrorKind::NotFound);
        let spawn = ExecError::from(ProcessError::Spawn { program: "/usr/bin/p".into(), source: os() });
        assert_eq!(spawn.to_string(), "cannot start /usr/bin/p: entity not found");
        assert_eq!(spawn.source().map(|s| s.to_string()).as_deref(), Some("entity not found"));
        let wait = ExecError::from(ProcessError::Wait { program: "/usr/bin/p".into(), source: os() });
        assert_eq!(wait.to_string(), "waiting for /usr/bin/p failed: entity not found");
        let timeout =
            ExecError::from(ProcessError::Timeout { program: "/usr/bin/p".into(), after: Dur::from_secs(90) });
        assert_eq!(timeout.to_string(), "/usr/bin/p timed out after 1m 30s and was killed");
        assert!(timeout.source().is_none());
    }
}
