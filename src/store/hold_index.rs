//! The index of holds in force (issue 13: an operator lists every hold,
//! and the engine wakes at the earliest review date), kept by every engine
//! from the records that hold them: a resource's own holds (not the copies
//! of tenant-wide ones it carries) and a tenant's record of tenant-wide
//! holds. Like the indexes of `indexes.rs`, it equals a recount of those
//! records after every commit, so neither a listing nor the engine reads
//! every record (issue 11).
//!
//! Keys of the sled engine. A hold's place is its tenant, its resource
//! (empty for a tenant-wide hold) and its id, joined by a zero byte, which
//! no id and no authority text holds (both refuse control characters), so
//! keys sort as [`HoldKey`] does: by tenant, then resource, a tenant-wide
//! hold first, then hold id.
//! - `k/<tenant>\0<resource>\0<hold_id>`: every hold in force, the hold
//!   itself (JSON) as the value, so a listing reads no resource record.
//! - `a/<authority>\0<tenant>\0<resource>\0<hold_id>`: the same holds by
//!   authority (`GET /v1/holds?authority=`).
//! - `v/<millis, 8 bytes big-endian, sign-flipped>/<tenant>\0..`: review
//!   dates not yet reported, rounded up to the millisecond (a review is
//!   never reported early), earliest first.
//! - `m/holds`: the counts of [`HoldCounts`], updated by every commit that
//!   writes a resource or a tenant's holds.
//!
//! These are built, with the other indexes, from every record when a
//! database written by an older build is opened (`indexes::INDEXES_VERSION`).

use crate::domain::lifecycle::{Hold, Resource, TenantHolds};
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};

/// Prefix of the holds in force.
pub(crate) const HOLD_PREFIX: &[u8] = b"k/";
/// Prefix of the holds by authority.
pub(crate) const AUTHORITY_PREFIX: &[u8] = b"a/";
/// Prefix of the review dates not yet reported.
pub(crate) const REVIEW_PREFIX: &[u8] = b"v/";
/// Where the [`HoldCounts`] are stored.
pub(crate) const HOLD_COUNTS_KEY: &[u8] = b"m/holds";

/// Which hold: a hold id is unique on its resource, or on its tenant for a
/// tenant-wide one. Ordered as the sled keys are (see the module doc).
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HoldKey {
    /// The tenant.
    pub tenant: String,
    /// The resource; `None` for a hold on the whole tenant.
    pub resource: Option<String>,
    /// The hold's id.
    pub hold_id: String,
}

/// A hold in force, where it is placed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HoldEntry {
    /// Where.
    pub key: HoldKey,
    /// The hold as placed (its review date and report included).
    pub hold: Hold,
}

/// Which holds [`crate::store::Store::holds`] lists: those of one tenant,
/// or placed by one authority (its text exactly), or both; all without.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HoldFilter {
    /// Only this tenant's.
    pub tenant: Option<String>,
    /// Only those whose authority is exactly this.
    pub authority: Option<String>,
}

impl HoldFilter {
    /// Whether `e` is one of the holds asked for.
    pub fn admits(&self, e: &HoldEntry) -> bool {
        self.tenant.as_ref().is_none_or(|t| *t == e.key.tenant)
            && self.authority.as_ref().is_none_or(|a| *a == e.hold.authority)
    }
}

/// Counts of the holds in force, for `GET /metrics`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HoldCounts {
    /// Holds in force (a tenant-wide hold counts once).
    pub in_force: u64,
    /// Those reported as due for review and not yet released.
    pub review_due: u64,
}

impl HoldCounts {
    /// Counts `entries` in (`add`) or out.
    pub(crate) fn tally(&mut self, entries: &[HoldEntry], add: bool) {
        let step = |n: &mut u64, by: u64| *n = if add { *n + by } else { n.saturating_sub(by) };
        step(&mut self.in_force, entries.len() as u64);
        step(&mut self.review_due, entries.iter().filter(|e| e.hold.review_reported_at.is_some()).count() as u64);
    }
}

/// The holds a resource record places: its own, not the copies of its
/// tenant's tenant-wide holds (those are listed once, from the tenant).
pub(crate) fn of_resource(r: &Resource) -> Vec<HoldEntry> {
    r.holds
        .iter()
        .filter(|h| !h.tenant_wide)
        .map(|h| HoldEntry {
            key: HoldKey { tenant: r.tenant.clone(), resource: Some(r.id.clone()), hold_id: h.hold_id.clone() },
            hold: h.clone(),
        })
        .collect()
}

/// The holds a tenant's record places on the whole tenant.
pub(crate) fn of_tenant(tenant: &str, holds: &TenantHolds) -> Vec<HoldEntry> {
    holds
        .holds
        .iter()
        .map(|h| HoldEntry {
            key: HoldKey { tenant: tenant.to_owned(), resource: None, hold_id: h.hold_id.clone() },
            hold: h.clone(),
        })
        .collect()
}

/// The review date the index holds for `h`: its `review_at` until the
/// engine has reported it, rounded up to the millisecond (never early).
pub(crate) fn pending_review(h: &Hold) -> Option<i64> {
    h.review_at.filter(|_| h.review_reported_at.is_none()).map(super::indexes::ceil_millis)
}

impl HoldKey {
    /// `<tenant>\0<resource>\0<hold_id>`, the resource empty for a
    /// tenant-wide hold.
    pub(crate) fn tail(&self) -> Vec<u8> {
        let resource = self.resource.as_deref().unwrap_or("");
        [self.tenant.as_bytes(), b"\0", resource.as_bytes(), b"\0", self.hold_id.as_bytes()].concat()
    }

    /// The key whose [`HoldKey::tail`] is `tail`; `None` when malformed.
    pub(crate) fn from_tail(tail: &[u8]) -> Option<HoldKey> {
        let text = std::str::from_utf8(tail).ok()?;
        let mut parts = text.split('\0');
        let (tenant, resource, hold_id) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() || tenant.is_empty() || hold_id.is_empty() {
            return None;
        }
        Some(HoldKey {
            tenant: tenant.to_owned(),
            resource: (!resource.is_empty()).then(|| resource.to_owned()),
            hold_id: hold_id.to_owned(),
        })
    }

    /// `k/<tail>`.
    pub(crate) fn key(&self) -> Vec<u8> {
        [HOLD_PREFIX, &self.tail()].concat()
    }
}

/// `k/<tenant>\0`: every key of the tenant's holds starts with it.
pub(crate) fn tenant_prefix(tenant: &str) -> Vec<u8> {
    [HOLD_PREFIX, tenant.as_bytes(), b"\0"].concat()
}

/// `a/<authority>\0`, then `<tenant>\0` when given: every key of those
/// holds starts with it.
pub(crate) fn authority_prefix(authority: &str, tenant: Option<&str>) -> Vec<u8> {
    let mut k = [AUTHORITY_PREFIX, authority.as_bytes(), b"\0"].concat();
    if let Some(t) = tenant {
        k.extend_from_slice(t.as_bytes());
        k.push(0);
    }
    k
}

/// `a/<authority>\0<tail>`.
pub(crate) fn authority_key(authority: &str, key: &HoldKey) -> Vec<u8> {
    [authority_prefix(authority, None), key.tail()].concat()
}

/// `v/<millis>`: sorts before every review key at `millis` or later.
pub(crate) fn reviews_from(millis: i64) -> Vec<u8> {
    let ms = (millis as u64) ^ (1 << 63);
    [REVIEW_PREFIX, &ms.to_be_bytes()].concat()
}

/// `v/<millis>/<tail>`.
pub(crate) fn review_key(millis: i64, key: &HoldKey) -> Vec<u8> {
    let mut k = reviews_from(millis);
    k.push(b'/');
    k.extend_from_slice(&key.tail());
    k
}

/// The review date and hold of a `v/` key; `None` when malformed.
pub(crate) fn review_of_key(k: &[u8]) -> Option<(Timestamp, HoldKey)> {
    let ms = u64::from_be_bytes(k.get(2..10)?.try_into().ok()?) ^ (1 << 63);
    (k.get(10) == Some(&b'/')).then_some(())?;
    Some((chrono::DateTime::from_timestamp_millis(ms as i64)?, HoldKey::from_tail(k.get(11..)?)?))
}

/// Every key and value the sled engine keeps for `e`.
pub(crate) fn keys_of(e: &HoldEntry) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut out =
        vec![(e.key.key(), super::record::encode(&e.hold)), (authority_key(&e.hold.authority, &e.key), Vec::new())];
    if let Some(ms) = pending_review(&e.hold) {
        out.push((review_key(ms, &e.key), Vec::new()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(tenant: &str, resource: Option<&str>, hold_id: &str) -> HoldKey {
        HoldKey { tenant: tenant.into(), resource: resource.map(Into::into), hold_id: hold_id.into() }
    }

    /// The key bytes, spelled out: a change here is a change of format.
    #[test]
    fn keys_keep_their_bytes() {
        assert_eq!(key("t1", Some("r1"), "h1").key(), b"k/t1\0r1\0h1");
        assert_eq!(key("t1", None, "h1").key(), b"k/t1\0\0h1");
        assert_eq!(authority_key("Court 7/b", &key("t1", None, "h1")), b"a/Court 7/b\0t1\0\0h1");
        assert_eq!(review_key(1, &key("t1", Some("r1"), "h1")), b"v/\x80\0\0\0\0\0\0\x01/t1\0r1\0h1");
        let t = chrono::DateTime::from_timestamp_millis(1).unwrap();
        assert_eq!(review_of_key(&review_key(1, &key("t1", None, "h1"))), Some((t, key("t1", None, "h1"))));
        assert_eq!(review_of_key(b"v/x"), None);
        assert_eq!(HoldKey::from_tail(b"t1\0r1"), None);
        assert_eq!(HoldKey::from_tail(b"\0r1\0h1"), None);
    }

    /// The bytes sort as the keys do (the memory engine keeps the keys, the
    /// sled engine their bytes: both list holds in one order), whatever the
    /// ids' characters: `t1` before `t1-x`, a tenant-wide hold first.
    #[test]
    fn bytes_sort_as_keys_do() {
        let mut keys = vec![
            key("t1-x", None, "h"),
            key("t1", Some("r.1"), "h"),
            key("t1", Some("-r"), "h"),
            key("t1", None, "h2"),
            key("t1", None, "h"),
            key("t1", Some("r"), "h-2"),
            key("t1", Some("r"), "h"),
            key("t1.a", Some("r"), "h"),
        ];
        keys.sort();
        let mut by_bytes = keys.clone();
        by_bytes.sort_by_key(HoldKey::key);
        assert_eq!(keys, by_bytes);
        assert_eq!(keys[0], key("t1", None, "h"));
        let mut by_authority = keys.clone();
        by_authority.sort_by_key(|k| authority_key("A", k));
        assert_eq!(keys, by_authority);
    }
}
