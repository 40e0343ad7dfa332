//! `[products.*]`: one retention policy per product (domain-rules §1.2),
//! checked against the stores it names and the `[safety]` floors, then
//! sealed with its version.

use super::origin::Origin;
use super::raw::{OneOrMany, RawBuffer, RawProduct};
use super::{ConfigError, SafetyConfig};
use crate::domain::event::Billing;
use crate::domain::policy::{Buffers, DataKind, ProductPolicy, StoreClass, StorePolicy, TerminationReason};
use crate::duration::Dur;
use crate::ids::check_id;
use rust_decimal::Decimal;
use std::collections::BTreeMap;
use std::ops::Range;
use toml::Spanned;

/// What every product is checked against.
pub(super) struct Rules<'a> {
    /// The file, for positions.
    pub(super) origin: &'a Origin<'a>,
    /// The validated `[stores.*]`.
    pub(super) stores: &'a BTreeMap<String, StorePolicy>,
    /// The validated `[safety]`.
    pub(super) safety: &'a SafetyConfig,
    /// Where `safety.min_notice` is set (a notice longer than it is
    /// reported there: that is the value to raise).
    pub(super) min_notice_at: Range<usize>,
}

/// Every `[products.NAME]` by name.
pub(super) fn products(
    rules: &Rules,
    raw: BTreeMap<Spanned<String>, RawProduct>,
) -> Result<BTreeMap<String, ProductPolicy>, ConfigError> {
    let mut products = BTreeMap::new();
    for (name, product) in raw {
        let (name_span, name) = (name.span(), name.into_inner());
        check_id(&name).map_err(|m| rules.origin.error(name_span.clone(), format!("product name {name:?} {m}")))?;
        let policy = rules.product(name.clone(), name_span, product)?;
        products.insert(name, policy);
    }
    Ok(products)
}

impl Rules<'_> {
    /// One product, checked in the order its keys are documented.
    fn product(
        &self,
        name: String,
        name_span: Range<usize>,
        product: RawProduct,
    ) -> Result<ProductPolicy, ConfigError> {
        let stores = self.stores_of(&name, product.stores)?;
        let buffer = self.buffers(&name, product.buffer.into_inner())?;
        let arrears_affects = self.arrears_affects(&name, product.arrears_affects)?;
        let late_fee_per_day = self.late_fee(&name, product.late_fee_per_day)?;
        let notices = self.notices(&name, name_span, product.notices)?;
        let renewal_reminder = self.renewal_reminder(&name, product.renewal_reminder)?;
        Ok(ProductPolicy {
            name,
            stores,
            buffer,
            arrears_grace: product.arrears_grace,
            notices,
            renewal_reminder,
            renewal_cutoff: product.renewal_cutoff,
            arrears_affects,
            late_fee_per_day,
            version: String::new(),
        }
        .seal())
    }

    /// `stores`: known business stores, each once, one of them online (the
    /// copy that defines the resource).
    fn stores_of(&self, name: &str, list: Spanned<Vec<Spanned<String>>>) -> Result<Vec<StorePolicy>, ConfigError> {
        let err = |span, message| self.origin.error(span, message);
        let list_span = list.span();
        let names = list.into_inner();
        if names.is_empty() {
            return Err(err(list_span, format!("products.{name}.stores must name at least one store")));
        }
        let mut product_stores: Vec<StorePolicy> = Vec::new();
        for s in names {
            let span = s.span();
            let s = s.into_inner();
            let store = self.stores.get(&s).ok_or_else(|| {
                err(span.clone(), format!("products.{name}.stores: unknown store {s:?} (no [stores.{s}] section)"))
            })?;
            if store.data != DataKind::Business {
                // Product-spec §8: a product's copies are business data; a
                // personal store is erased by privacy classes, never by a
                // resource's deletion.
                return Err(err(
                    span,
                    format!(
                        "products.{name}.stores: stores.{s} holds {} data; products list business stores only",
                        store.data
                    ),
                ));
            }
            if product_stores.iter().any(|p| p.name == s) {
                return Err(err(span, format!("products.{name}.stores: store {s:?} listed twice")));
            }
            product_stores.push(store.clone());
        }
        if !product_stores.iter().any(|s| s.class == StoreClass::Online) {
            return Err(err(list_span, format!("products.{name}.stores must include a store of class \"online\"")));
        }
        Ok(product_stores)
    }

    /// `buffer`: none below `safety.min_buffer` but violation; a reason
    /// without its own value takes `termination`'s.
    fn buffers(&self, name: &str, b: RawBuffer) -> Result<Buffers, ConfigError> {
        let min = self.safety.min_buffer;
        let check_min = |d: &Spanned<Dur>, key: &str| -> Result<Dur, ConfigError> {
            if *d.get_ref() < min {
                Err(self.origin.error(
                    d.span(),
                    format!(
                        "products.{name}.buffer.{key} = \"{}\" is below safety.min_buffer = \"{min}\"",
                        d.get_ref()
                    ),
                ))
            } else {
                Ok(*d.get_ref())
            }
        };
        let expiry = check_min(&b.expiry, "expiry")?;
        let arrears = check_min(&b.arrears, "arrears")?;
        let termination = check_min(&b.termination, "termination")?;
        let mut by_reason = BTreeMap::new();
        for (reason, value) in [
            (TerminationReason::Agreement, &b.agreement),
            (TerminationReason::Violation, &b.violation),
            (TerminationReason::Attack, &b.attack),
            (TerminationReason::Discontinued, &b.discontinued),
            (TerminationReason::ProviderOutage, &b.provider_outage),
        ] {
            let d = match value {
                None => termination,
                // general terms 7.5.2: a serious breach may purge at once, so
                // violation alone may go below min_buffer.
                Some(v) if reason == TerminationReason::Violation => *v.get_ref(),
                Some(v) => check_min(v, reason.as_str())?,
            };
            by_reason.insert(reason, d);
        }
        Ok(Buffers { expiry, arrears, termination: by_reason, account_closed: termination })
    }

    /// `arrears_affects`: billing kinds, postpaid only by default.
    fn arrears_affects(&self, name: &str, raw: Option<Spanned<Vec<String>>>) -> Result<Vec<Billing>, ConfigError> {
        let Some(list) = raw else { return Ok(vec![Billing::Postpaid]) };
        let span = list.span();
        let mut out = Vec::new();
        for b in list.into_inner() {
            out.push(match b.as_str() {
                "prepaid" => Billing::Prepaid,
                "postpaid" => Billing::Postpaid,
                other => {
                    return Err(self.origin.error(
                        span,
                        format!("products.{name}.arrears_affects: {other:?} is not \"prepaid\" or \"postpaid\""),
                    ))
                }
            });
        }
        Ok(out)
    }

    /// `late_fee_per_day`: a percentage, 0.05% by default.
    fn late_fee(&self, name: &str, raw: Option<Spanned<String>>) -> Result<Decimal, ConfigError> {
        let Some(s) = raw else { return Ok(Decimal::new(5, 4)) };
        parse_percent(s.get_ref()).ok_or_else(|| {
            self.origin.error(
                s.span(),
                format!("products.{name}.late_fee_per_day: {:?} is not a percentage such as \"0.05%\"", s.get_ref()),
            )
        })
    }

    /// `notices`: longest first, none of 0s, none longer than
    /// `safety.min_notice`.
    fn notices(&self, name: &str, name_span: Range<usize>, mut notices: Vec<Dur>) -> Result<Vec<Dur>, ConfigError> {
        let min_notice = self.safety.min_notice;
        notices.sort_unstable_by(|a, b| b.cmp(a));
        notices.dedup();
        // A deadline moved by apply-policy is never closer than min_notice,
        // so every warning can still go out before it.
        if let Some(longest) = notices.first().filter(|n| **n > min_notice) {
            return Err(self.origin.error(
                self.min_notice_at.clone(),
                format!(
                    "safety.min_notice = \"{min_notice}\" is shorter than products.{name}.notices' \"{longest}\": \
                     a deadline moved by apply-policy could skip that warning"
                ),
            ));
        }
        if notices.iter().any(|n| n.is_zero()) {
            return Err(self
                .origin
                .error(name_span, format!("products.{name}.notices: an offset of 0s warns of nothing")));
        }
        Ok(notices)
    }

    /// `renewal_reminder`: longest first, none of 0s.
    fn renewal_reminder(&self, name: &str, raw: Spanned<OneOrMany>) -> Result<Vec<Dur>, ConfigError> {
        let span = raw.span();
        let mut reminders = raw.into_inner().into_vec();
        reminders.sort_unstable_by(|a, b| b.cmp(a));
        reminders.dedup();
        if reminders.iter().any(|d| d.is_zero()) {
            return Err(self.origin.error(
                span,
                format!(
                    "products.{name}.renewal_reminder: an offset of 0s would remind at the renewal cutoff, \
                     not before it; use [] for no reminder"
                ),
            ));
        }
        Ok(reminders)
    }
}

/// "0.05%" → 0.0005.
fn parse_percent(s: &str) -> Option<Decimal> {
    let d: Decimal = s.trim().strip_suffix('%')?.trim().parse().ok()?;
    (!d.is_sign_negative() && d <= Decimal::ONE_HUNDRED).then(|| d / Decimal::ONE_HUNDRED)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{parse, Config};
    use std::path::Path;

    fn cfg(buffer: &str) -> Result<Config, ConfigError> {
        let text = format!(
            "[daemon]\nstate_dir = \"s\"\n[stores.p]\nclass = \"online\"\n\
             executor = {{ kind = \"fs\", root = \"/srv\", path = \"{{resource}}\" }}\n\
             [products.x]\nstores = [\"p\"]\nbuffer = {buffer}\n"
        );
        parse(Path::new("/etc/retentiond/t.toml"), &text)
    }

    /// general terms 7.5.2: only violation may go under min_buffer; a
    /// per-reason override is checked like the termination buffer.
    #[test]
    fn only_violation_may_go_under_min_buffer() {
        let ok =
            cfg(r#"{ expiry = "2d", arrears = "2d", termination = "3d", violation = "0s", attack = "30d" }"#).unwrap();
        let b = &ok.products["x"].buffer;
        assert!(b.termination[&TerminationReason::Violation].is_zero());
        assert_eq!(b.termination[&TerminationReason::Attack].to_string(), "30days");
        assert_eq!(b.termination[&TerminationReason::Agreement].to_string(), "3days", "falls back to termination");
        let err =
            cfg(r#"{ expiry = "2d", arrears = "2d", termination = "3d", attack = "1h" }"#).unwrap_err().to_string();
        assert!(err.contains("buffer.attack") && err.contains("min_buffer") && err.contains(":8:"), "{err}");
        let err = cfg(r#"{ expiry = "2d", arrears = "2d" }"#).unwrap_err().to_string();
        assert!(err.contains("termination"), "{err}");
    }

    #[test]
    fn policy_version_follows_the_content() {
        let a = cfg(r#"{ expiry = "2d", arrears = "2d", termination = "3d" }"#).unwrap();
        let b = cfg(r#"{ expiry = "2d", arrears = "2d", termination = "3d" }"#).unwrap();
        let c = cfg(r#"{ expiry = "3d", arrears = "2d", termination = "3d" }"#).unwrap();
        assert_eq!(a.products["x"].version, b.products["x"].version);
        assert_ne!(a.products["x"].version, c.products["x"].version);
    }
}
