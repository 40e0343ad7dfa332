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

use std::path::PathBuf;

use crate::duration::Dur;
use crate::outbound::HttpSpec;

/// The action on a copy is domain vocabulary (the lifecycle decides it);
/// re-exported here because every executor receives one.
pub use crate::domain::vocabulary::Action;

mod command;
mod error;
mod fs;
mod http;
mod template;

pub use command::{CommandExecutor, CommandSpecError};
pub use error::{ExecError, SpecError};
pub use fs::{FsExecutor, FsSpecError};
pub use http::HttpExecutor;
pub use template::TemplateError;
use template::{contains, id_placeholders, parse_template, render, Piece, Placeholder};

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
    /// worse, deletes more than one resource). Err names the bad part in
    /// one line.
    pub fn validate(&self) -> Result<(), SpecError> {
        match self {
            ExecutorSpec::Fs { root, path, marker } => Ok(fs::validate(root, path, marker)?),
            ExecutorSpec::Command { argv, timeout } => Ok(command::validate(argv, *timeout)?),
            ExecutorSpec::Http(spec) => Ok(spec.validate()?),
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

    /// Short description for logs (`fs:/srv/data`, `command:/usr/libexec/x`,
    /// `http:https://purge.internal/v1/purge`);
    /// names the executor without dumping the whole template.
    pub fn describe(&self) -> String {
        match self {
            Executor::Fs(e) => e.describe(),
            Executor::Command(e) => e.describe(),
            Executor::Http(e) => e.describe(),
        }
    }
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
            ExecutorSpec::Fs { root: "/srv/d".into(), path: path.into(), marker: default_marker() }
                .validate()
                .map_err(|e| e.to_string())
        };
        let cmd = |arg: &str| {
            ExecutorSpec::Command { argv: vec!["/bin/x".into(), arg.into()], timeout: Dur::from_secs(60) }
                .validate()
                .map_err(|e| e.to_string())
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
