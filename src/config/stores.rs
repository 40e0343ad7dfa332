//! `[stores.*]`: where copies of business data live and how each is
//! deleted. Every store is checked on its own; products then refer to
//! them by name.

use super::origin::Origin;
use super::raw::RawStore;
use super::{ConfigError, ConfigWarning};
use crate::domain::policy::{ExecutorRef, PurgeMode, StoreClass, StorePolicy};
use crate::duration::Dur;
use crate::executor::ExecutorSpec;
use crate::ids::check_id;
use std::collections::BTreeMap;
use toml::Spanned;

/// Default `max_restricted` of an `at_expiry` backup store, in days.
const DEFAULT_MAX_RESTRICTED_DAYS: u64 = 90;

/// The valid `[stores.*]`: each store's policy and its executor's typed
/// spec, by name, and the warnings of stores that are valid but weaken a
/// safeguard.
pub(super) struct Stores {
    pub(super) policies: BTreeMap<String, StorePolicy>,
    pub(super) executors: BTreeMap<String, ExecutorSpec>,
    pub(super) warnings: Vec<ConfigWarning>,
}

/// Every `[stores.NAME]` by name.
pub(super) fn stores(
    origin: &Origin,
    raw: BTreeMap<Spanned<String>, Spanned<RawStore>>,
) -> Result<Stores, ConfigError> {
    let mut out = Stores { policies: BTreeMap::new(), executors: BTreeMap::new(), warnings: Vec::new() };
    for (name, spanned) in raw {
        let (name_span, name) = (name.span(), name.into_inner());
        check_id(&name).map_err(|m| origin.error(name_span, format!("store name {name:?} {m}")))?;
        let (policy, executor, warning) = store(origin, name.clone(), spanned.into_inner())?;
        out.warnings.extend(warning);
        out.policies.insert(name.clone(), policy);
        out.executors.insert(name, executor);
    }
    Ok(out)
}

/// One store: a valid executor (an `fs` root resolved against the file's
/// directory), and `purge` and `max_restricted` only where they mean
/// something. The warning, if any, is for an `fs` store whose marker check
/// is off.
fn store(
    origin: &Origin,
    name: String,
    store: RawStore,
) -> Result<(StorePolicy, ExecutorSpec, Option<ConfigWarning>), ConfigError> {
    let exec_span = store.executor.span();
    let executor = match store.executor.into_inner() {
        ExecutorSpec::Fs { root, path, marker } => ExecutorSpec::Fs { root: origin.resolve(root), path, marker },
        other => other,
    };
    executor
        .validate(crate::domain::policy::DataKind::Business)
        .map_err(|m| origin.error(exec_span.clone(), format!("stores.{name}.executor: {m}")))?;
    let warning = match &executor {
        ExecutorSpec::Fs { root, marker, .. } if marker.is_empty() => Some(origin.warning(
            exec_span,
            format!(
                "stores.{name}.executor: marker = \"\" turns off the check that {} is \
                 the mounted volume: with the volume unmounted, its data would be recorded as deleted",
                root.display()
            ),
        )),
        _ => None,
    };
    let purge = match store.purge {
        None => PurgeMode::Immediate,
        Some(p) if store.class != StoreClass::Backup => {
            return Err(origin.error(p.span(), format!("stores.{name}.purge is only meaningful for class \"backup\"")));
        }
        Some(p) => p.into_inner(),
    };
    let max_restricted = match (store.max_restricted, purge) {
        (Some(m), PurgeMode::AtExpiry) if m.get_ref().is_zero() => {
            return Err(origin.error(
                m.span(),
                format!("stores.{name}.max_restricted must be longer than 0s (use purge = \"immediate\")"),
            ));
        }
        (Some(m), PurgeMode::AtExpiry) => Some(*m.get_ref()),
        (None, PurgeMode::AtExpiry) => Some(Dur::from_secs(DEFAULT_MAX_RESTRICTED_DAYS * 86_400)),
        (Some(m), PurgeMode::Immediate) => {
            return Err(origin.error(
                m.span(),
                format!("stores.{name}.max_restricted is only meaningful with purge = \"at_expiry\""),
            ));
        }
        (None, PurgeMode::Immediate) => None,
    };
    let policy = StorePolicy { name, class: store.class, purge, max_restricted, executor: ExecutorRef::of(&executor) };
    Ok((policy, executor, warning))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{parse, Config};
    use std::path::Path;

    fn with_executor(executor: &str) -> Result<Config, ConfigError> {
        let text = format!(
            "[daemon]\nstate_dir = \"s\"\n[stores.p]\nclass = \"online\"\nexecutor = {executor}\n\
             [products.x]\nstores = [\"p\"]\nbuffer = {{ expiry = \"2d\", arrears = \"2d\", termination = \"2d\" }}\n"
        );
        parse(Path::new("/etc/retentiond/t.toml"), &text)
    }

    /// The fs marker defaults to `.retentiond-root`, must be a plain file
    /// name (refused with the executor's position), and `""` is accepted
    /// with a warning naming the store and the position.
    #[test]
    fn fs_marker_default_validation_and_warning() {
        let c = with_executor(r#"{ kind = "fs", root = "/srv/d", path = "{resource}" }"#).unwrap();
        assert!(matches!(&c.executors["p"], ExecutorSpec::Fs { marker, .. } if marker == ".retentiond-root"));
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        assert!(c.to_string().contains("fs /srv/d/{resource} (marker .retentiond-root)"), "{c}");

        for bad in ["../up", "a/b", "..", "."] {
            let err = with_executor(&format!(
                r#"{{ kind = "fs", root = "/srv/d", path = "{{resource}}", marker = "{bad}" }}"#
            ))
            .unwrap_err()
            .to_string();
            assert!(err.starts_with("/etc/retentiond/t.toml:5:12: stores.p.executor: fs executor: marker"), "{err}");
        }

        let c = with_executor(r#"{ kind = "fs", root = "/srv/d", path = "{resource}", marker = "" }"#).unwrap();
        assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
        let w = c.warnings[0].to_string();
        assert!(w.starts_with("/etc/retentiond/t.toml:5:12: stores.p.executor: marker = \"\""), "{w}");
        assert!(w.contains("/srv/d"), "{w}");
        assert!(c.to_string().contains("(no marker check)"), "{c}");
    }
}

#[cfg(test)]
mod version_pins {
    use crate::config::parse;
    use std::path::Path;

    /// Domain-rules §5.2: every deadline records the policy version that set
    /// it, and an unchanged policy keeps its version across restarts and
    /// upgrades. The version hashes the policy with its stores' executors,
    /// so these pins (taken before the executor spec left the domain's
    /// policy type) prove that moving code does not change a version.
    #[test]
    fn policy_versions_do_not_change_when_the_code_moves() {
        let text = r#"
[daemon]
state_dir = "s"
[stores.p]
class = "online"
executor = { kind = "fs", root = "/srv/data", path = "{tenant}/{resource}" }
[stores.c]
class = "cache"
executor = { kind = "command", argv = ["/usr/bin/purge", "{resource}", "{action}"], timeout = "90s" }
[stores.b]
class = "backup"
purge = "at_expiry"
executor = { kind = "http", url = "https://purge.internal/v1/purge", secret_env = "PURGE_KEY" }
[products.x]
stores = ["p", "c", "b"]
buffer = { expiry = "15d", arrears = "10d", termination = "20d", violation = "0s" }
notices = ["7d", "1d"]
[products.y]
stores = ["p"]
buffer = { expiry = "2d", arrears = "2d", termination = "2d" }
"#;
        let c = parse(Path::new("/etc/retentiond/t.toml"), text).unwrap();
        let versions: Vec<(&str, &str)> = c.products.iter().map(|(n, p)| (n.as_str(), p.version.as_str())).collect();
        assert_eq!(versions, vec![("x", "14106f20971c5da8"), ("y", "6e61d5f282cfda15")]);
    }
}
