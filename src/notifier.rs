//! The notifier: tells tenants what is about to happen to their data
//! (domain-rules §1.3; issue 5, notices).
//!
//! A notice is kept with its resource (see [`crate::domain::lifecycle::Notice`]) and
//! handed to the notifier once its intent is durable; it is marked sent only
//! when the notifier confirms, so every notice goes out at least once. The
//! receiver deduplicates on the notice's key, which is stable across
//! retries and restarts. Sending never touches a deadline.
//!
//! Two kinds, configured in `[notifier]` like executors:
//! - `command`: runs `argv` (never through a shell, environment cleared but
//!   `PATH`: the sandboxed child of [`crate::outbound::process`], which the
//!   `command` executor runs too) with the notice as one JSON object on
//!   standard input; exit 0 means sent. No placeholders: everything is in
//!   the JSON.
//! - `http`: POSTs the same JSON, with the `Idempotency-Key` (the notice's
//!   key) and HMAC `X-Retentiond-Signature` headers: the signed POST of
//!   [`crate::outbound::http`], which the `http` executor sends too.
//!
//! The JSON holds identifiers, dates and the notice kind, never business
//! data: `{"key","notice","tenant","resource","product","date","cause","offset"}`.

use crate::domain::lifecycle::Notice;
use crate::duration::Dur;
use crate::outbound::{process, HttpSpec, HttpSpecError, PostError, ProcessError, SignedPost};
use crate::time::fmt_rfc3339;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::process::ExitStatus;
use std::time::Duration;

/// `[notifier]` as written in the config file.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum NotifierSpec {
    /// Run a program with the notice on standard input.
    Command {
        /// Program and fixed arguments (no placeholders).
        argv: Vec<String>,
        /// How long it may run (default 30s).
        #[serde(default = "default_timeout")]
        timeout: Dur,
    },
    /// POST the notice to a messaging service, signed like an `http`
    /// executor's request (same keys, same checks).
    Http(HttpSpec),
}

fn default_timeout() -> Dur {
    Dur::from_secs(30)
}

/// What is wrong with `[notifier]`. Display is the one-line message the
/// config error shows, starting with `notifier: `.
#[derive(Debug, thiserror::Error)]
pub enum NotifierSpecError {
    /// No program.
    #[error("notifier: argv must not be empty")]
    EmptyArgv,
    /// The program is not an absolute path, so it would depend on `PATH`.
    #[error("notifier: argv[0] {program:?} must be an absolute path")]
    ProgramRelative {
        /// `argv[0]`.
        program: String,
    },
    /// An argument looks like a placeholder (or holds a NUL byte): a
    /// notifier's arguments are fixed, the notice comes on standard input.
    #[error("notifier: argv[{index}] {arg:?}: no placeholders (the notice comes as JSON on standard input)")]
    Placeholder {
        /// Position in argv.
        index: usize,
        /// The argument.
        arg: String,
    },
    /// A zero timeout would fail every notice.
    #[error("notifier: timeout must be greater than zero")]
    ZeroTimeout,
    /// The `http` notifier's spec.
    #[error("notifier: {0}")]
    Http(#[from] HttpSpecError),
}

impl NotifierSpec {
    /// Static checks at load time; Err names the bad part.
    pub fn validate(&self) -> Result<(), NotifierSpecError> {
        match self {
            NotifierSpec::Command { argv, timeout } => {
                let Some(program) = argv.first() else { return Err(NotifierSpecError::EmptyArgv) };
                if !program.starts_with('/') {
                    return Err(NotifierSpecError::ProgramRelative { program: program.clone() });
                }
                if let Some((index, a)) = argv.iter().enumerate().find(|(_, a)| a.contains('{') || a.contains('\0')) {
                    return Err(NotifierSpecError::Placeholder { index, arg: a.clone() });
                }
                if timeout.is_zero() {
                    return Err(NotifierSpecError::ZeroTimeout);
                }
                Ok(())
            }
            NotifierSpec::Http(spec) => Ok(spec.validate()?),
        }
    }

    /// The hard limit on one send, after which it counts as failed.
    pub fn limit(&self) -> Duration {
        match self {
            NotifierSpec::Command { timeout, .. } | NotifierSpec::Http(HttpSpec { timeout, .. }) => timeout.0,
        }
    }
}

/// A ready-to-use notifier.
#[derive(Debug)]
pub enum Notifier {
    /// See [`NotifierSpec::Command`].
    Command {
        /// Program and arguments.
        argv: Vec<String>,
        /// Time limit.
        timeout: Dur,
    },
    /// See [`NotifierSpec::Http`]: the signed POST the `http` executor sends.
    Http(SignedPost),
}

/// Why a notice could not be sent (identifiers and codes only).
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// The program could not be started.
    #[error("notifier {program}: cannot start: {source}")]
    Spawn {
        /// The program.
        program: String,
        /// Why.
        source: std::io::Error,
    },
    /// Waiting for the program failed; whether it sent the notice is
    /// unknown.
    #[error("notifier {program}: wait failed: {source}")]
    Wait {
        /// The program.
        program: String,
        /// Why.
        source: std::io::Error,
    },
    /// The program ran longer than its timeout and was killed.
    #[error("notifier {program}: no answer within {after}")]
    Timeout {
        /// The program.
        program: String,
        /// The configured timeout.
        after: Dur,
    },
    /// The program exited with a status other than 0.
    #[error("notifier {program}: exited with {status}{stderr}")]
    Exited {
        /// The program.
        program: String,
        /// Its exit status.
        status: ExitStatus,
        /// `: <the last 300 characters of its stderr>` (control characters
        /// escaped), or empty when it said nothing.
        stderr: String,
    },
    /// The HTTP exchange failed.
    #[error(transparent)]
    Http(#[from] PostError),
}

/// `: <last 300 characters of stderr>`, control characters escaped, or
/// nothing when it said nothing.
fn tail(said: &[u8]) -> String {
    let text = String::from_utf8_lossy(said);
    let text = text.trim();
    if text.is_empty() {
        return String::new();
    }
    let start = text.char_indices().rev().nth(299).map_or(0, |(i, _)| i);
    let escaped: String = text[start..]
        .chars()
        .flat_map(|c| if c.is_control() { c.escape_default().collect() } else { vec![c] })
        .collect();
    format!(": {escaped}")
}

/// The JSON a notifier receives.
pub fn payload(n: &Notice, tenant: &str, resource: &str, product: &str) -> serde_json::Value {
    json!({
        "key": n.key, "notice": n.kind.as_str(), "tenant": tenant, "resource": resource, "product": product,
        "date": n.date.map(fmt_rfc3339), "cause": n.cause,
        "offset": n.offset_secs.map(|o| humantime::format_duration(Duration::from_secs(o)).to_string()),
    })
}

impl Notifier {
    /// Builds the notifier for a validated spec.
    pub fn from_spec(spec: &NotifierSpec) -> Notifier {
        match spec {
            NotifierSpec::Command { argv, timeout } => Notifier::Command { argv: argv.clone(), timeout: *timeout },
            NotifierSpec::Http(spec) => Notifier::Http(SignedPost::new(spec.clone())),
        }
    }

    /// Sends one notice. Ok only when the receiver confirmed it.
    pub async fn send(&self, key: &str, body: &serde_json::Value) -> Result<(), NotifyError> {
        let bytes = serde_json::to_vec(body).unwrap_or_default();
        match self {
            Notifier::Http(h) => Ok(h.post(key, bytes).await?),
            Notifier::Command { argv, timeout } => {
                let program = argv.first().map_or("", String::as_str);
                let mut input = bytes;
                input.push(b'\n');
                let exited = process::run(program, argv.get(1..).unwrap_or_default(), Some(&input), *timeout)
                    .await
                    .map_err(|e| match e {
                        ProcessError::Spawn { program, source } => NotifyError::Spawn { program, source },
                        ProcessError::Wait { program, source } => NotifyError::Wait { program, source },
                        ProcessError::Timeout { program, after } => NotifyError::Timeout { program, after },
                    })?;
                if exited.status.success() {
                    Ok(())
                } else {
                    let stderr = tail(exited.stderr.bytes());
                    Err(NotifyError::Exited { program: program.to_owned(), status: exited.status, stderr })
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_spec_must_be_absolute_and_placeholder_free() {
        let spec = |argv: &[&str]| NotifierSpec::Command {
            argv: argv.iter().map(|s| s.to_string()).collect(),
            timeout: Dur::from_secs(5),
        };
        assert!(spec(&["/usr/bin/notify", "--mail"]).validate().is_ok());
        assert!(spec(&[]).validate().unwrap_err().to_string().contains("argv must not be empty"));
        assert!(spec(&["notify"]).validate().unwrap_err().to_string().contains("absolute"));
        assert!(spec(&["/bin/x", "{tenant}"]).validate().unwrap_err().to_string().contains("argv[1]"));
    }

    #[tokio::test]
    async fn command_gets_the_json_on_stdin_and_exit_status_decides() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("got.json");
        let script = dir.path().join("notify.sh");
        std::fs::write(&script, format!("#!/bin/sh\ncat > {}\nexit ${{1:-0}}\n", out.display())).unwrap();
        std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let n = Notifier::Command { argv: vec![script.display().to_string()], timeout: Dur::from_secs(10) };
        let body = json!({"key": "r1:deletion_completed", "notice": "deletion_completed"});
        n.send("r1:deletion_completed", &body).await.unwrap();
        let got: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
        assert_eq!(got, body);
        let failing =
            Notifier::Command { argv: vec![script.display().to_string(), "3".into()], timeout: Dur::from_secs(10) };
        let err = failing.send("k", &body).await.unwrap_err().to_string();
        assert!(err.contains("exit status: 3"), "{err}");
        let loud = dir.path().join("loud.sh");
        std::fs::write(&loud, "#!/bin/sh\ncat >/dev/null\necho 'smtp down' >&2\nexit 1\n").unwrap();
        std::fs::set_permissions(&loud, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let n = Notifier::Command { argv: vec![loud.display().to_string()], timeout: Dur::from_secs(10) };
        let err = n.send("k", &body).await.unwrap_err().to_string();
        assert!(err.ends_with("exit status: 1: smtp down"), "{err}");
    }

    /// A program that says a lot on stderr (more than any cap on what is
    /// kept of it) is judged by its exit status: its stderr is read to the
    /// end, so it is neither blocked on a full pipe nor killed by SIGPIPE.
    #[tokio::test]
    async fn a_chatty_program_is_judged_by_its_exit_status() {
        let script = "cat >/dev/null; i=0; while [ $i -lt 4000 ]; do \
                      echo 'filler line of about fifty bytes ...........' >&2; i=$((i+1)); done; \
                      echo 'smtp down' >&2; exit $1";
        let chatty = |code: &str| Notifier::Command {
            argv: ["/bin/sh", "-c", script, "sh", code].map(str::to_owned).to_vec(),
            timeout: Dur::from_secs(20),
        };
        let body = json!({"key": "k"});
        chatty("0").send("k", &body).await.unwrap();
        let err = chatty("1").send("k", &body).await.unwrap_err().to_string();
        assert!(err.starts_with("notifier /bin/sh: exited with exit status: 1: "), "{err}");
        assert!(err.ends_with("...........\\nsmtp down"), "{err}");
    }
}
