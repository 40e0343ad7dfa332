//! The vocabulary shared by events, policies and the lifecycle: how a
//! resource is paid for, why a buffer runs, why a resource was terminated,
//! and what is to be done to a copy (the lifecycle decides it, an executor
//! carries it out).
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
}

impl TerminationReason {
    /// Every reason, for validation and printing.
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
        }
    }

    /// Parses the event/config name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// What the daemon asks an executor to do to one copy.
///
/// `Delete` and `Purge` both end with the copy gone; they are distinct so a
/// `command` executor can treat them differently (`{action}` placeholder),
/// e.g. a soft delete versus scrubbing backups. `Restrict` blocks processing
/// without deleting, which not every executor can do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
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

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
