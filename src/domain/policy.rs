//! Effective, validated retention policy per product (domain-rules §1.2:
//! "the buffer period's length is set by the product's own terms", so every
//! number here comes from the config file, never from code).

pub use crate::domain::vocabulary::{Billing, Cause, DataKind, TerminationReason};
use crate::duration::Dur;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// Where copies of data live (product-spec §3): business data's, and the
/// same classes for stores of personal data (product-spec §8).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreClass {
    /// The live data the service runs on.
    Online,
    /// Caches derived from it: deleted with the online data (general terms 4.1.5).
    Cache,
    /// Backup copies, registered one by one with `backup.created`.
    Backup,
}

/// When a backup copy may go (privacy policy 5.3.3).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PurgeMode {
    /// Deleted together with the online data.
    #[default]
    Immediate,
    /// Restricted at deletion time, purged when the copy expires.
    AtExpiry,
}

/// One configured store.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StorePolicy {
    /// The store's name in `[stores.NAME]`.
    pub name: String,
    /// Its class.
    pub class: StoreClass,
    /// Which kind of data it holds (product-spec §8): business copies of
    /// resources, named by products, or personal data of subjects, named by
    /// privacy classes, never both. Left out of the serialized policy when
    /// business, so the versions of products sealed before personal data
    /// existed stay the same (domain-rules §5.2).
    #[serde(skip_serializing_if = "DataKind::is_business")]
    pub data: DataKind,
    /// Backup purge mode (meaningful for class `backup`).
    pub purge: PurgeMode,
    /// For a `purge = "at_expiry"` backup store: the longest a copy may
    /// stay restricted instead of deleted, counted from when its
    /// restriction was asked for (the resource's deletion start, or the
    /// backup's registration if it came later). Business data is to be gone at the buffer's end (general
    /// terms 4.1.5); a restricted copy is a bounded exception (domain-rules
    /// §2), so past this an operator is alerted (`copy.restriction_overdue`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_restricted: Option<crate::duration::Dur>,
    /// How copies are deleted, opaque to the domain (see [`ExecutorRef`]).
    pub executor: ExecutorRef,
}

/// A store's executor as the policy sees it: the executor's spec in its
/// serialized form, nothing more. The policy's version hashes it (a store
/// that deletes differently is a new policy, domain-rules §5.2), but no rule
/// reads it: the typed spec is `Config::executors`, from which only the
/// engine builds executors. Opaque so the domain does not import the
/// executors, which carry out the domain's actions.
#[derive(Clone, Debug)]
pub struct ExecutorRef(Box<serde_json::value::RawValue>);

impl ExecutorRef {
    /// The serialized form of an executor's spec, exactly as serde writes
    /// it inline (so versions sealed before this type existed are kept).
    pub fn of(spec: &impl Serialize) -> ExecutorRef {
        ExecutorRef(serde_json::value::to_raw_value(spec).expect("an executor spec serializes"))
    }
}

impl PartialEq for ExecutorRef {
    fn eq(&self, other: &Self) -> bool {
        self.0.get() == other.0.get()
    }
}

impl Serialize for ExecutorRef {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

/// Buffer lengths by cause and termination reason for one product.
#[derive(Clone, Debug, PartialEq)]
pub struct Buffers {
    /// After the term end.
    pub expiry: Dur,
    /// After arrears start plus the grace.
    pub arrears: Dur,
    /// After an early termination, by reason (missing reasons fall back to
    /// `termination` when the config is loaded, so every reason is present).
    pub termination: BTreeMap<TerminationReason, Dur>,
    /// After `account.closed`: the product's `termination` buffer as
    /// written (product-spec §8). In the version only where it differs
    /// from the agreement's (whose default it is), so that products whose
    /// config did not change keep their versions.
    pub account_closed: Dur,
}

impl Serialize for Buffers {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let distinct = self.termination.get(&TerminationReason::Agreement) != Some(&self.account_closed);
        let mut st = s.serialize_struct("Buffers", 3 + usize::from(distinct))?;
        st.serialize_field("expiry", &self.expiry)?;
        st.serialize_field("arrears", &self.arrears)?;
        st.serialize_field("termination", &self.termination)?;
        if distinct {
            st.serialize_field("account_closed", &self.account_closed)?;
        }
        st.end()
    }
}

impl Buffers {
    /// The buffer a cause starts (release has none: general terms 4.1.4).
    pub fn for_cause(&self, cause: Cause, reason: Option<TerminationReason>) -> Dur {
        match cause {
            Cause::Expiry => self.expiry,
            Cause::Arrears => self.arrears,
            Cause::Release => Dur::default(),
            Cause::Termination if reason == Some(TerminationReason::AccountClosed) => self.account_closed,
            Cause::Termination => {
                let reason = reason.unwrap_or(TerminationReason::Agreement);
                self.termination
                    .get(&reason)
                    .copied()
                    // unreachable after validation; the longest buffer is the safe side
                    .unwrap_or_else(|| self.termination.values().copied().max().unwrap_or(self.expiry))
            }
        }
    }
}

/// The effective policy of one product, with the version recorded on every
/// deadline it sets (domain-rules §5.2).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ProductPolicy {
    /// The product's name in `[products.NAME]`.
    pub name: String,
    /// The stores holding this product's copies, in config order.
    pub stores: Vec<StorePolicy>,
    /// Buffer lengths.
    pub buffer: Buffers,
    /// Time from arrears start to the buffer's start.
    pub arrears_grace: Dur,
    /// Warnings before irreversible deletion.
    pub notices: Vec<Dur>,
    /// Renewal reminders, each this long before the renewal cutoff,
    /// longest first; empty: no reminder (domain-rules §1.3: the renewal
    /// is due `renewal_cutoff` before the term end, so the reminder must
    /// come before that, not at it).
    pub renewal_reminder: Vec<Dur>,
    /// How long before the term end the renewal must be paid (general
    /// terms 2.3.1.3; trial terms 3.2.2: at least 7 days).
    pub renewal_cutoff: Dur,
    /// Which resources a tenant-wide `arrears.started` affects (by billing;
    /// postpaid by default: pay-as-you-go draws on the balance, general
    /// terms 2.3).
    pub arrears_affects: Vec<Billing>,
    /// Late fee per day as a fraction of the overdue amount (0.0005 for the
    /// agreements' 0.05 %, general terms 2.3; trial terms 3.4). Shown,
    /// never charged.
    pub late_fee_per_day: Decimal,
    /// Hash of everything above; set by [`ProductPolicy::seal`].
    #[serde(skip)]
    pub version: String,
}

impl ProductPolicy {
    /// Computes `version`: the first 16 hex digits of the SHA-256 of the
    /// policy's effective content, so a changed number gives a new version
    /// and an unchanged file keeps it across restarts.
    pub fn seal(mut self) -> Self {
        let body = serde_json::to_vec(&self).expect("policy serializes");
        let digest = Sha256::digest(&body);
        self.version = hex::encode(&digest[..8]);
        self
    }

    /// The stores of a class.
    pub fn stores_of(&self, class: StoreClass) -> impl Iterator<Item = &StorePolicy> {
        self.stores.iter().filter(move |s| s.class == class)
    }

    /// Looks up a store of this product by name.
    pub fn store(&self, name: &str) -> Option<&StorePolicy> {
        self.stores.iter().find(|s| s.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::lifecycle::fixtures::policy;

    const DAY: u64 = 86_400;

    /// General terms 4.1.4 and 4.1.5: a release has no buffer; expiry,
    /// arrears and each termination reason keep the product's own; a
    /// violation may have none (general terms 7.5.2). A termination without
    /// a reason counts as agreed; a reason missing from the table (never,
    /// after validation) gets the longest buffer, the safe side.
    #[test]
    fn each_cause_gets_the_products_buffer_and_a_release_none() {
        let b = policy().buffer;
        let days = |cause, reason| b.for_cause(cause, reason).0.as_secs() / DAY;
        assert_eq!(days(Cause::Release, None), 0);
        assert_eq!((days(Cause::Expiry, None), days(Cause::Arrears, None)), (15, 10));
        assert_eq!(days(Cause::Termination, Some(TerminationReason::Violation)), 0);
        assert_eq!(days(Cause::Termination, Some(TerminationReason::Attack)), 15);
        assert_eq!(days(Cause::Termination, None), 15);

        let mut partial = policy().buffer;
        partial.termination = BTreeMap::from([(TerminationReason::Violation, Dur::from_secs(40 * DAY))]);
        assert_eq!(partial.for_cause(Cause::Termination, Some(TerminationReason::Attack)).0.as_secs() / DAY, 40);
    }

    /// Domain-rules §5.2: every deadline is recorded with the version of the
    /// policy that set it: the same policy keeps its version (across
    /// restarts), any changed number gives a new one.
    #[test]
    fn the_version_follows_the_policys_content() {
        let v = policy().version;
        assert_eq!(v.len(), 16);
        assert!(v.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(policy().version, v);
        let mut changed = policy();
        changed.arrears_grace = Dur::from_secs(6 * DAY);
        assert_ne!(changed.seal().version, v);
    }
}
