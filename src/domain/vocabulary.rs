//! The vocabulary shared by events, policies and the lifecycle: how a
//! resource is paid for, why a buffer runs, why a resource was terminated,
//! what is to be done to a copy (the lifecycle decides it, an executor
//! carries it out), and which kind of data a store holds.
//! Kept apart so that `event` and `policy` both build on it without
//! importing each other.

use serde::{Deserialize, Serialize};

/// How a resource is paid for (general terms 2.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Billing {
    /// Subscription: served from activation to `term_end` (general terms 7.2.1).
    Prepaid,
    /// Pay-as-you-go, charged per billing period; no term end.
    Postpaid,
}

/// Why a resource's buffer runs: the three ways of domain-rules §1.1 that keep
/// data for a buffer, plus the tenant's own release (no buffer, general terms
/// 4.1.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cause {
    /// The prepaid term ended (general terms 7.2.1).
    Expiry,
    /// The service was terminated before its term end (general terms 7.4, 7.5).
    Termination,
    /// Fees are unpaid (general terms 2.3).
    Arrears,
    /// The tenant released the resource itself (general terms 4.1.4).
    Release,
}

impl Cause {
    /// The name used in events, records and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Cause::Expiry => "expiry",
            Cause::Termination => "termination",
            Cause::Arrears => "arrears",
            Cause::Release => "release",
        }
    }
}

/// Reasons for early termination (general terms 7.4, 7.5.1-7.5.3; trial terms
/// 9.3; IoT terms 7.2, 7.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TerminationReason {
    /// Both sides agreed (7.5.1).
    Agreement,
    /// Serious breach by the tenant: may purge at once (7.5.2).
    Violation,
    /// The tenant's site was attacked and endangered the platform (7.5.3).
    Attack,
    /// The provider discontinued the product with 30 days' notice (7.4).
    Discontinued,
    /// 72 consecutive hours of provider-caused outage (8.3).
    ProviderOutage,
    /// The tenant closed its account (`account.closed`; privacy policy
    /// 5.5.2: services stop): the product's `termination` buffer. Not in
    /// [`TerminationReason::ALL`]: no `resource.terminated` event gives it.
    AccountClosed,
}

impl TerminationReason {
    /// Every reason a `resource.terminated` event may give, each with its
    /// own buffer key, for validation and printing.
    pub const ALL: [TerminationReason; 5] = [
        TerminationReason::Agreement,
        TerminationReason::Violation,
        TerminationReason::Attack,
        TerminationReason::Discontinued,
        TerminationReason::ProviderOutage,
    ];

    /// The name used in events and config keys.
    pub fn as_str(self) -> &'static str {
        match self {
            TerminationReason::Agreement => "agreement",
            TerminationReason::Violation => "violation",
            TerminationReason::Attack => "attack",
            TerminationReason::Discontinued => "discontinued",
            TerminationReason::ProviderOutage => "provider_outage",
            TerminationReason::AccountClosed => "account_closed",
        }
    }

    /// Parses the event/config name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// What the daemon asks an executor to do to one copy of business data, or
/// to a subject's personal data in one store.
///
/// `Delete` and `Purge` both end with the copy gone; they are distinct so a
/// `command` executor can treat them differently (`{action}` placeholder),
/// e.g. a soft delete versus scrubbing backups. `Restrict` blocks processing
/// without deleting, which not every executor can do. `Anonymize` and
/// `Unrestrict` concern personal data only (product-spec §8), `Purge`
/// business data only: [`Action::applies_to`] says which.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Remove the copy (or the subject's personal data).
    Delete,
    /// Restrict processing of the copy (or of the subject's personal data)
    /// without removing it: no restore, read, copy or export (privacy policy
    /// 5.3.3; a restriction request of domain-rules §3).
    Restrict,
    /// Remove the copy for good, including anything a `Delete` may keep.
    Purge,
    /// Anonymise the subject's personal data irreversibly: no key or mapping
    /// back to the person is kept (privacy policy definitions, domain-rules
    /// §3); de-identified data that can be linked back does not count.
    Anonymize,
    /// Lift a restriction of processing of the subject's personal data (a
    /// `restriction.lifted`, product-spec §8).
    Unrestrict,
}

impl Action {
    /// Every action, for validation and tests.
    pub const ALL: [Action; 5] =
        [Action::Delete, Action::Restrict, Action::Purge, Action::Anonymize, Action::Unrestrict];

    /// The lowercase word used in config, logs and the `{action}`
    /// placeholder, so operators' scripts see the same spelling everywhere.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Delete => "delete",
            Action::Restrict => "restrict",
            Action::Purge => "purge",
            Action::Anonymize => "anonymize",
            Action::Unrestrict => "unrestrict",
        }
    }

    /// Whether the action exists for this kind of data: business copies are
    /// deleted, restricted and purged (domain-rules §2); personal data is
    /// deleted, anonymised, restricted and unrestricted (product-spec §8).
    /// An executor refuses an action on data it does not apply to, so a
    /// mix-up upstream can never anonymise a backup or purge a person.
    pub fn applies_to(self, data: DataKind) -> bool {
        match self {
            Action::Delete | Action::Restrict => true,
            Action::Purge => data == DataKind::Business,
            Action::Anonymize | Action::Unrestrict => data == DataKind::Personal,
        }
    }
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which of the two data classes a store holds (product-spec §8,
/// domain-rules §3): business data belongs to a resource and goes at the end
/// of its product's buffer; personal data belongs to a subject (the account
/// holder or a user of the account) and goes by the privacy policies'
/// classes and requests. A store holds one kind only, so its executor's
/// template names either a resource's copy or a subject, never a mix.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DataKind {
    /// Copies of a resource's business data (domain-rules §1, §2): the
    /// default, and what every store was before personal data existed.
    #[default]
    Business,
    /// Personal data of a subject (domain-rules §3).
    Personal,
}

impl DataKind {
    /// The word used in the config (`data = "personal"`) and in output.
    pub fn as_str(self) -> &'static str {
        match self {
            DataKind::Business => "business",
            DataKind::Personal => "personal",
        }
    }

    /// True for the default kind; lets a serialized [`StorePolicy`] leave
    /// the field out, so policy versions sealed before it existed are kept.
    ///
    /// [`StorePolicy`]: crate::domain::policy::StorePolicy
    pub fn is_business(&self) -> bool {
        *self == DataKind::Business
    }
}

impl std::fmt::Display for DataKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The spelling operators' scripts and receivers see, in config, argv
    /// and JSON alike.
    #[test]
    fn actions_and_data_kinds_are_spelt_in_lowercase() {
        for (a, s) in [
            (Action::Delete, "delete"),
            (Action::Restrict, "restrict"),
            (Action::Purge, "purge"),
            (Action::Anonymize, "anonymize"),
            (Action::Unrestrict, "unrestrict"),
        ] {
            assert_eq!(a.as_str(), s);
            assert_eq!(a.to_string(), s);
            assert_eq!(serde_json::to_string(&a).unwrap(), format!("\"{s}\""));
            assert_eq!(serde_json::from_str::<Action>(&format!("\"{s}\"")).unwrap(), a);
        }
        for (d, s) in [(DataKind::Business, "business"), (DataKind::Personal, "personal")] {
            assert_eq!((d.as_str(), d.to_string()), (s, s.to_owned()));
            assert_eq!(serde_json::to_string(&d).unwrap(), format!("\"{s}\""));
            assert_eq!(serde_json::from_str::<DataKind>(&format!("\"{s}\"")).unwrap(), d);
        }
        assert_eq!(DataKind::default(), DataKind::Business);
    }

    /// Product-spec §8: personal data is deleted, anonymised, restricted and
    /// unrestricted; a purge is a business backup's (domain-rules §2).
    #[test]
    fn each_action_applies_to_its_data_kinds() {
        let for_kind = |d| Action::ALL.into_iter().filter(|a| a.applies_to(d)).collect::<Vec<_>>();
        assert_eq!(for_kind(DataKind::Business), [Action::Delete, Action::Restrict, Action::Purge]);
        assert_eq!(
            for_kind(DataKind::Personal),
            [Action::Delete, Action::Restrict, Action::Anonymize, Action::Unrestrict]
        );
    }
}
