//! The effective `[privacy]` policy (product-spec §8), with a version
//! recorded on every erasure it schedules, as product policies are
//! (domain-rules §5.2): every number comes from the config file.

use super::Erasure;
use crate::duration::Dur;
use serde::Serialize;
use sha2::{Digest, Sha256};

/// One class of personal data (`[privacy.classes.NAME]`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ClassPolicy {
    /// The class's name.
    pub name: String,
    /// The personal stores that hold it, in config order.
    pub stores: Vec<String>,
    /// How long it is kept after `account.closed` (privacy policy 5.5.2,
    /// 7.2: only as long as needed, then erased).
    pub after_closure: Dur,
    /// What tax and accounting law requires to be kept (privacy policy
    /// 7.2), counted from the account's closure, or from the erasure
    /// request while the account is open: an erasure before it is refused
    /// for this class (ground `legal_obligation`) and scheduled at its end.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub legal_minimum: Option<Dur>,
    /// Delete or anonymise.
    pub erasure: Erasure,
}

/// The `[privacy]` section in force.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PrivacyPolicy {
    /// An erasure or restriction request is answered within this (privacy
    /// policy 5.6.1: 15 days).
    pub response_time: Dur,
    /// Operator warnings this long before a request is overdue, longest
    /// first.
    pub warn_before: Vec<Dur>,
    /// True: a verified request is executed at once, without an operator.
    pub auto_approve: bool,
    /// The classes, by name order.
    pub classes: Vec<ClassPolicy>,
    /// Hash of everything above; set by [`PrivacyPolicy::seal`].
    #[serde(skip)]
    pub version: String,
}

impl Default for PrivacyPolicy {
    /// What a config without `[privacy]` gets: requests are still tracked
    /// and answered within 15 days (privacy policy 5.6.1), with warnings 5
    /// days and 1 day before, decided by an operator; no class, so nothing
    /// personal is erased.
    fn default() -> Self {
        PrivacyPolicy {
            response_time: Dur::from_secs(15 * 86_400),
            warn_before: vec![Dur::from_secs(5 * 86_400), Dur::from_secs(86_400)],
            auto_approve: false,
            classes: Vec::new(),
            version: String::new(),
        }
        .seal()
    }
}

impl PrivacyPolicy {
    /// Computes `version` like [`crate::domain::policy::ProductPolicy::seal`]:
    /// the first 16 hex digits of the SHA-256 of the effective content.
    pub fn seal(mut self) -> Self {
        let body = serde_json::to_vec(&self).expect("privacy policy serializes");
        self.version = hex::encode(&Sha256::digest(&body)[..8]);
        self
    }

    /// A class by name.
    pub fn class(&self, name: &str) -> Option<&ClassPolicy> {
        self.classes.iter().find(|c| c.name == name)
    }
}
