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
/// Which kind of data a store holds decides the placeholders its templates
/// may use and the actions it receives; re-exported for the same reason.
pub use crate::domain::vocabulary::DataKind;

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
use template::{contains, foreign, id_placeholders, parse_template, render, Piece, Placeholder};

/// What an action applies to: one copy of a resource's business data, or
/// one class of a subject's personal data, in one store. Every id passed
/// [`crate::ids::check_id`] when it entered the daemon (or its alphabet
/// rule, [`crate::ids::check_stored_id`], for tenants, resources and copies
/// stored before issue 9); executors check again before building a path,
/// an argument or a body from it, because a wrong id here deletes the wrong
/// data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// The customer the data belongs to.
    pub tenant: String,
    /// The configured store holding it.
    pub store: String,
    /// Which data in the store: its kind decides which placeholders exist.
    pub item: Item,
}

/// The data a [`Target`] names inside its store. An enum rather than
/// optional fields so a target is either a copy or a subject's class,
/// never half of each: a template placeholder the item does not have
/// (`{subject}` for a copy, `{resource}` for a subject) is an error,
/// never an empty string.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Item {
    /// A copy of a resource's business data (domain-rules §1, §2).
    Copy {
        /// The resource whose retention expired.
        resource: String,
        /// Which copy inside the store (primary, replica, backup, ...).
        copy: String,
    },
    /// One class of a subject's personal data (product-spec §8,
    /// domain-rules §3).
    Personal {
        /// The person: the account holder (the tenant id) or a user of the
        /// account (unique within the tenant).
        subject: String,
        /// The privacy class (`[privacy.classes.NAME]`, e.g. `contact`).
        class: String,
    },
}

impl Item {
    /// The kind of data this item is, which must be its store's.
    pub fn data(&self) -> DataKind {
        match self {
            Item::Copy { .. } => DataKind::Business,
            Item::Personal { .. } => DataKind::Personal,
        }
    }
}

impl Target {
    /// A copy of a resource's business data.
    pub fn copy(tenant: &str, store: &str, resource: &str, copy: &str) -> Target {
        Target {
            tenant: tenant.to_owned(),
            store: store.to_owned(),
            item: Item::Copy { resource: resource.to_owned(), copy: copy.to_owned() },
        }
    }

    /// One class of a subject's personal data.
    pub fn personal(tenant: &str, store: &str, subject: &str, class: &str) -> Target {
        Target {
            tenant: tenant.to_owned(),
            store: store.to_owned(),
            item: Item::Personal { subject: subject.to_owned(), class: class.to_owned() },
        }
    }

    /// Refuses an action that does not exist for the target's kind of data
    /// ([`Action::applies_to`]): every executor calls this before anything
    /// else, so a mix-up upstream never reaches a store.
    fn check_action(&self, action: Action) -> Result<(), ExecError> {
        let data = self.item.data();
        if action.applies_to(data) {
            Ok(())
        } else {
            Err(ExecError::ActionNotForData { action, data })
        }
    }
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
    /// Static checks at config-load time, for a store holding `data`, so a
    /// bad template is refused when the daemon starts rather than when the
    /// first deadline passes (or, worse, deletes more than one resource or
    /// person). A business store's templates name `{resource}` and may not
    /// use `{subject}` or `{class}`; a personal store's name `{subject}` and
    /// may not use `{resource}` or `{copy}` (product-spec §8). Err names the
    /// bad part in one line.
    pub fn validate(&self, data: DataKind) -> Result<(), SpecError> {
        match self {
            ExecutorSpec::Fs { root, path, marker } => Ok(fs::validate(root, path, marker, data)?),
            ExecutorSpec::Command { argv, timeout } => Ok(command::validate(argv, *timeout, data)?),
            // The body carries the target's own fields, whichever its kind.
            ExecutorSpec::Http(spec) => Ok(spec.validate()?),
        }
    }

    /// Whether this kind of executor can carry out `action` at all: an `fs`
    /// executor can only remove paths (`delete`, `purge`), so it cannot
    /// restrict, anonymise or lift a restriction; `command` and `http` pass
    /// every action on. For cross-checks at config load (a privacy class
    /// whose erasure is `anonymize` on an `fs` store could never complete).
    pub fn supports(&self, action: Action) -> bool {
        match self {
            ExecutorSpec::Fs { .. } => fs::supports(action),
            ExecutorSpec::Command { .. } | ExecutorSpec::Http(_) => true,
        }
    }

    /// Whether the executor tells the store which privacy class a call is
    /// for: the `http` body always carries `class`; an `fs` path or a
    /// `command` argv only when it holds `{class}`. A personal store that
    /// holds several classes needs it, or erasing one class (say `contact`
    /// after 30 days) would erase the others (`billing_records`, kept 7
    /// years) with it.
    pub fn names_class(&self) -> bool {
        let has_class =
            |template: &str| parse_template(template).is_ok_and(|pieces| contains(&pieces, Placeholder::Class));
        match self {
            ExecutorSpec::Fs { path, .. } => has_class(path),
            ExecutorSpec::Command { argv, .. } => argv.iter().any(|a| has_class(a)),
            ExecutorSpec::Http(_) => true,
        }
    }
}

/// A ready-to-run executor built from an [`ExecutorSpec`]. It serves a
/// store of either kind of data: each run re-validates the spec for the
/// kind of its target, so a business template handed a subject (or a
/// personal one handed a copy) fails without touching anything.
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

    /// Performs `action` on the copy or personal data named by `target`.
    /// Ok(()) only when it is verifiably gone (or restricted, anonymised,
    /// unrestricted, as asked); every doubt is an error so the scheduler
    /// retries and an operator sees it, instead of recording a deletion that
    /// did not happen.
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
        assert!(fs.validate(DataKind::Business).is_ok());

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
        assert!(spec.validate(DataKind::Business).is_ok());
        let spec =
            parse(r#"executor = { kind = "http", url = "http://h/p", secret_env = "K", timeout = "300ms" }"#).unwrap();
        assert!(
            matches!(spec, ExecutorSpec::Http(HttpSpec { timeout, .. }) if timeout == Dur(std::time::Duration::from_millis(300)))
        );
        assert!(spec.validate(DataKind::Business).is_ok());
    }

    /// Product-spec §8: a business store's templates name `{resource}` and
    /// never `{subject}` or `{class}`; a personal store's name `{subject}`
    /// and never `{resource}` or `{copy}`, and a personal command must pass
    /// `{action}` (it gets four different ones). An http executor carries
    /// whichever fields its target has, so it suits both.
    #[test]
    fn templates_are_checked_for_the_stores_kind_of_data() {
        let fs = |path: &str, data| {
            ExecutorSpec::Fs { root: "/srv/d".into(), path: path.into(), marker: default_marker() }
                .validate(data)
                .map_err(|e| e.to_string())
        };
        let cmd = |args: &[&str], data| {
            let argv = std::iter::once("/bin/x").chain(args.iter().copied()).map(str::to_owned).collect();
            ExecutorSpec::Command { argv, timeout: Dur::from_secs(60) }.validate(data).map_err(|e| e.to_string())
        };
        use DataKind::{Business, Personal};
        assert!(fs("{tenant}/{subject}", Personal).is_ok());
        assert!(fs("{tenant}/{class}/{subject}.json", Personal).is_ok());
        assert!(cmd(&["{tenant}", "{subject}", "{class}", "{action}"], Personal).is_ok());
        for (result, needle) in [
            (fs("{tenant}", Personal), "must contain {subject}"),
            (fs("{tenant}/{class}", Personal), "must contain {subject}"),
            (fs("{tenant}/{subject}/{resource}", Personal), "uses {resource}, which a store of personal data"),
            (fs("{subject}/{copy}", Personal), "uses {copy}"),
            (fs("{tenant}/{subject}", Business), "uses {subject}, which a store of business data"),
            (fs("{class}/{resource}", Business), "uses {class}"),
            (fs("{tenant}/{subjet}", Personal), "unknown placeholder {subjet}"),
            (fs("{tenant}/{subject}-{class}", Personal), "joins several ids"),
            (cmd(&["{subject}", "{resource}", "{action}"], Personal), "argv[2] \"{resource}\" uses {resource}"),
            (cmd(&["{tenant}", "{action}"], Personal), "no argument contains {subject}"),
            (cmd(&["{subject}", "{class}"], Personal), "no argument contains {action}"),
            (cmd(&["{resource}", "--who={subject}"], Business), "argv[2] \"--who={subject}\" uses {subject}"),
            (cmd(&["{resource}", "{class}"], Business), "uses {class}"),
            (cmd(&["{subject}", "{action}", "{clas}"], Personal), "unknown placeholder {clas}"),
        ] {
            let err = result.expect_err(needle);
            assert!(err.contains(needle), "{needle}: {err}");
        }
        let http = ExecutorSpec::Http(HttpSpec {
            url: "https://crm.internal/v1/privacy".into(),
            secret_file: Some("/etc/retentiond/crm.key".into()),
            secret_env: None,
            timeout: Dur::from_secs(30),
        });
        assert!(http.validate(Personal).is_ok() && http.validate(Business).is_ok());
    }

    /// What the config's cross-checks ask of a spec: an `fs` executor only
    /// removes paths, and only an executor that passes `{class}` (or the
    /// http body) can tell a store's classes apart.
    #[test]
    fn what_each_kind_supports_and_whether_it_names_the_class() {
        let fs = |path: &str| ExecutorSpec::Fs { root: "/srv/d".into(), path: path.into(), marker: default_marker() };
        let cmd = |args: &[&str]| ExecutorSpec::Command {
            argv: args.iter().map(|s| s.to_string()).collect(),
            timeout: Dur::from_secs(60),
        };
        let http = ExecutorSpec::Http(HttpSpec {
            url: "http://127.0.0.1:8443/p".into(),
            secret_file: None,
            secret_env: Some("K".into()),
            timeout: Dur::from_secs(1),
        });
        let supported = |spec: &ExecutorSpec| Action::ALL.into_iter().filter(|a| spec.supports(*a)).collect::<Vec<_>>();
        assert_eq!(supported(&fs("{tenant}/{subject}")), [Action::Delete, Action::Purge]);
        assert_eq!(supported(&cmd(&["/bin/x", "{subject}", "{action}"])), Action::ALL);
        assert_eq!(supported(&http), Action::ALL);
        assert!(!fs("{tenant}/{subject}").names_class());
        assert!(fs("{tenant}/{class}/{subject}").names_class());
        assert!(!cmd(&["/bin/x", "{subject}", "{action}"]).names_class());
        assert!(cmd(&["/bin/x", "{subject}", "--class={class}", "{action}"]).names_class());
        assert!(http.names_class());
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
                .validate(DataKind::Business)
                .map_err(|e| e.to_string())
        };
        let cmd = |arg: &str| {
            ExecutorSpec::Command { argv: vec!["/bin/x".into(), arg.into()], timeout: Dur::from_secs(60) }
                .validate(DataKind::Business)
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
