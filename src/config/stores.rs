//! `[stores.*]`: where copies of business data, and personal data of
//! subjects (`data = "personal"`, product-spec §8), live and how each is
//! deleted. Every store is checked on its own; products then refer to the
//! business ones by name (and privacy classes to the personal ones).

use super::origin::Origin;
use super::raw::RawStore;
use super::{ConfigError, ConfigWarning};
use crate::domain::policy::{DataKind, ExecutorRef, PurgeMode, StoreClass, StorePolicy};
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

/// One store: a valid executor for its kind of data (an `fs` root resolved
/// against the file's directory), and `purge` and `max_restricted` only
/// where they mean something: on business backup stores. The warning, if
/// any, is for an `fs` store whose marker check is off.
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
        .validate(store.data)
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
    if store.data == DataKind::Personal {
        // A restricted business backup is a bounded exception to "every copy
        // gone at the buffer's end" (domain-rules §2); personal data is
        // restricted and lifted by requests (product-spec §8), never by these.
        let set = [
            ("purge", store.purge.as_ref().map(Spanned::span)),
            ("max_restricted", store.max_restricted.as_ref().map(Spanned::span)),
        ];
        if let Some((key, span)) = set.into_iter().find_map(|(key, span)| Some((key, span?))) {
            return Err(origin.error(
                span,
                format!(
                    "stores.{name}.{key} does not apply to a store of personal data (data = \"personal\"): \
                     its data is restricted and erased by privacy requests and classes"
                ),
            ));
        }
    }
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
    let policy = StorePolicy {
        name,
        class: store.class,
        data: store.data,
        purge,
        max_restricted,
        executor: ExecutorRef::of(&executor),
    };
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

/// `data = "personal"` (product-spec §8, issue 12 part 1): what a store of
/// personal data may and may not say, each refusal at its position.
#[cfg(test)]
mod personal {
    use crate::config::{parse, Config, ConfigError};
    use crate::domain::policy::DataKind;
    use std::path::Path;

    /// A business store `p` for product `x`, then `stores` appended.
    fn with_stores(stores: &str) -> Result<Config, ConfigError> {
        let text = format!(
            "[daemon]\nstate_dir = \"s\"\n[stores.p]\nclass = \"online\"\n\
             executor = {{ kind = \"fs\", root = \"/srv/d\", path = \"{{tenant}}/{{resource}}\" }}\n\
             [products.x]\nstores = [\"p\"]\nbuffer = {{ expiry = \"2d\", arrears = \"2d\", termination = \"2d\" }}\n\
             {stores}"
        );
        parse(Path::new("/etc/retentiond/t.toml"), &text)
    }

    fn refused(stores: &str) -> String {
        with_stores(stores).expect_err(stores).to_string()
    }

    const CRM: &str = "[stores.crm]\nclass = \"online\"\ndata = \"personal\"\n";

    #[test]
    fn personal_stores_of_each_executor_kind_are_accepted_and_told_apart() {
        let c = with_stores(&format!(
            "{CRM}executor = {{ kind = \"http\", url = \"https://crm.internal/v1/privacy\", secret_file = \"/etc/k\" }}\n\
             [stores.home]\nclass = \"online\"\ndata = \"personal\"\n\
             executor = {{ kind = \"fs\", root = \"/srv/home\", path = \"{{tenant}}/{{subject}}\" }}\n\
             [stores.mailer]\nclass = \"cache\"\ndata = \"personal\"\n\
             executor = {{ kind = \"command\", argv = [\"/usr/bin/forget\", \"{{subject}}\", \"{{class}}\", \"{{action}}\"] }}\n\
             [stores.crm_tapes]\nclass = \"backup\"\ndata = \"personal\"\n\
             executor = {{ kind = \"command\", argv = [\"/usr/bin/tape\", \"{{subject}}\", \"{{action}}\"] }}\n\
             [stores.q]\nclass = \"cache\"\ndata = \"business\"\n\
             executor = {{ kind = \"fs\", root = \"/srv/q\", path = \"{{resource}}\" }}\n"
        ))
        .unwrap();
        for (store, data) in [
            ("crm", Some(DataKind::Personal)),
            ("home", Some(DataKind::Personal)),
            ("mailer", Some(DataKind::Personal)),
            ("crm_tapes", Some(DataKind::Personal)),
            ("p", Some(DataKind::Business)),
            ("q", Some(DataKind::Business)),
            ("nope", None),
        ] {
            assert_eq!(c.store_data(store), data, "{store}");
        }
        assert!(c.stores["crm_tapes"].max_restricted.is_none());
        let shown = c.to_string();
        assert!(
            shown.contains("store crm_tapes: class=backup data=personal executor=command /usr/bin/tape"),
            "{shown}"
        );
        assert!(shown.contains("store q: class=cache executor=fs"), "{shown}");
    }

    /// A product's copies are business data: naming a personal store is
    /// refused where it is named.
    #[test]
    fn a_product_may_not_name_a_personal_store() {
        let text = format!(
            "[daemon]\nstate_dir = \"s\"\n[stores.p]\nclass = \"online\"\n\
             executor = {{ kind = \"fs\", root = \"/srv/d\", path = \"{{resource}}\" }}\n\
             {CRM}executor = {{ kind = \"fs\", root = \"/srv/c\", path = \"{{subject}}\" }}\n\
             [products.x]\nstores = [\"p\", \"crm\"]\nbuffer = {{ expiry = \"2d\", arrears = \"2d\", termination = \"2d\" }}\n"
        );
        let err = parse(Path::new("/etc/retentiond/t.toml"), &text).unwrap_err().to_string();
        assert_eq!(
            err,
            "/etc/retentiond/t.toml:11:16: products.x.stores: stores.crm holds personal data; \
             products list business stores only"
        );
    }

    /// Each store's template is checked against its own kind of data, and
    /// the error names the store and points at its executor.
    #[test]
    fn templates_are_refused_for_the_wrong_kind_of_data() {
        for (stores, needle) in [
            (
                format!("{CRM}executor = {{ kind = \"fs\", root = \"/srv/c\", path = \"{{tenant}}/{{resource}}\" }}\n"),
                "t.toml:12:12: stores.crm.executor: fs executor: path \"{tenant}/{resource}\" uses {resource}",
            ),
            (
                format!("{CRM}executor = {{ kind = \"command\", argv = [\"/bin/x\", \"{{subject}}\", \"{{copy}}\", \"{{action}}\"] }}\n"),
                "t.toml:12:12: stores.crm.executor: command executor: argv[2] \"{copy}\" uses {copy}",
            ),
            (
                format!("{CRM}executor = {{ kind = \"command\", argv = [\"/bin/x\", \"{{subject}}\"] }}\n"),
                "stores.crm.executor: command executor: no argument contains {action}",
            ),
            (
                "[stores.b]\nclass = \"online\"\nexecutor = { kind = \"fs\", root = \"/srv/b\", path = \"{subject}/{resource}\" }\n".into(),
                "t.toml:11:12: stores.b.executor: fs executor: path \"{subject}/{resource}\" uses {subject}, which a store of business data",
            ),
            (
                "[stores.b]\nclass = \"online\"\nexecutor = { kind = \"command\", argv = [\"/bin/x\", \"{resource}\", \"{class}\"] }\n".into(),
                "stores.b.executor: command executor: argv[2] \"{class}\" uses {class}",
            ),
            (
                format!("{CRM}executor = {{ kind = \"fs\", root = \"/srv/c\", path = \"{{tenant}}/{{subjet}}\" }}\n"),
                "unknown placeholder {subjet}",
            ),
        ] {
            let err = refused(&stores);
            assert!(err.contains(needle), "{needle}\n{err}");
        }
    }

    /// `purge` and `max_restricted` bound a business backup's restriction
    /// (domain-rules §2); personal data is restricted by requests, so on a
    /// personal store they are refused at their position; so is an unknown
    /// `data`.
    #[test]
    fn business_backup_keys_and_unknown_kinds_are_refused() {
        let tapes = |extra: &str| {
            format!(
                "[stores.t]\nclass = \"backup\"\ndata = \"personal\"\n{extra}\n\
                 executor = {{ kind = \"command\", argv = [\"/bin/x\", \"{{subject}}\", \"{{action}}\"] }}\n"
            )
        };
        let err = refused(&tapes("purge = \"at_expiry\""));
        assert!(err.contains("t.toml:12:9: stores.t.purge does not apply to a store of personal data"), "{err}");
        let err = refused(&tapes("max_restricted = \"30d\""));
        assert!(err.contains("t.toml:12:18: stores.t.max_restricted does not apply to a store of personal"), "{err}");
        let err = refused("[stores.t]\nclass = \"online\"\ndata = \"private\"\nexecutor = { kind = \"http\", url = \"http://h/p\", secret_env = \"K\" }\n");
        assert!(err.contains("t.toml:11:8:") && err.contains("`business`") && err.contains("`personal`"), "{err}");
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
    /// policy type, and before stores had `data`) prove that moving code
    /// does not change a version, nor does a store of personal data beside
    /// the products' own.
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
[stores.crm]
class = "online"
data = "personal"
executor = { kind = "http", url = "https://crm.internal/v1/privacy", secret_env = "CRM_KEY" }
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
