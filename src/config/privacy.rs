//! `[privacy]` and `[privacy.classes.*]` (product-spec §8; domain-rules §3):
//! how fast requests are answered and how each class of personal data is
//! kept and erased, checked against the stores.

use super::origin::Origin;
use super::raw::RawPrivacy;
use super::{ConfigError, ConfigWarning};
use crate::domain::policy::StorePolicy;
use crate::domain::privacy::{ClassPolicy, Erasure, PrivacyPolicy};
use crate::domain::vocabulary::DataKind;
use crate::executor::ExecutorSpec;
use crate::ids::check_id;
use std::collections::BTreeMap;

/// What the privacy section is checked against.
pub(super) struct Context<'a> {
    pub(super) origin: &'a Origin<'a>,
    pub(super) stores: &'a BTreeMap<String, StorePolicy>,
    pub(super) executors: &'a BTreeMap<String, ExecutorSpec>,
}

/// The valid `[privacy]`, sealed with its version, and its warnings.
pub(super) fn privacy(cx: &Context<'_>, raw: RawPrivacy) -> Result<(PrivacyPolicy, Vec<ConfigWarning>), ConfigError> {
    let origin = cx.origin;
    let response_time = raw.response_time.get_ref();
    if response_time.is_zero() {
        return Err(origin.error(raw.response_time.span(), "privacy.response_time must be longer than 0s".into()));
    }
    let mut warn_before = raw.warn_before.get_ref().clone();
    if let Some(w) = warn_before.iter().find(|w| w.is_zero() || *w >= response_time) {
        return Err(origin.error(
            raw.warn_before.span(),
            format!("privacy.warn_before: {w} must be longer than 0s and shorter than response_time ({response_time})"),
        ));
    }
    warn_before.sort_unstable_by(|a, b| b.cmp(a));
    warn_before.dedup();
    let mut warnings = Vec::new();
    let mut classes = Vec::new();
    let mut class_spans = Vec::new();
    for (name, spanned) in raw.classes {
        let (name_span, name) = (name.span(), name.into_inner());
        check_id(&name).map_err(|m| origin.error(name_span, format!("privacy class name {name:?} {m}")))?;
        let class_span = spanned.span();
        let class = spanned.into_inner();
        let key = |k: &str| format!("privacy.classes.{name}.{k}");
        if class.stores.get_ref().is_empty() {
            return Err(origin.error(class.stores.span(), format!("{} must name at least one store", key("stores"))));
        }
        let mut stores: Vec<String> = Vec::new();
        for store in class.stores.into_inner() {
            let (span, store) = (store.span(), store.into_inner());
            match cx.stores.get(&store) {
                None => return Err(origin.error(span, format!("{}: unknown store {store:?}", key("stores")))),
                Some(p) if p.data != DataKind::Personal => {
                    return Err(origin.error(
                        span,
                        format!(
                            "{}: stores.{store} holds business data; a privacy class lists stores with \
                             data = \"personal\"",
                            key("stores")
                        ),
                    ))
                }
                Some(_) => {}
            }
            if stores.contains(&store) {
                return Err(origin.error(span, format!("{}: store {store:?} is listed twice", key("stores"))));
            }
            match cx.executors.get(&store) {
                Some(ExecutorSpec::Fs { .. }) if *class.erasure.get_ref() == Erasure::Anonymize => {
                    return Err(origin.error(
                        span,
                        format!(
                            "{}: store {store:?} is an fs store, which can delete but not anonymise: \
                             use a command or http executor, or erasure = \"delete\"",
                            key("stores")
                        ),
                    ));
                }
                Some(ExecutorSpec::Fs { .. }) => warnings.push(origin.warning(
                    span.clone(),
                    format!(
                        "{}: store {store:?} is an fs store, which cannot restrict processing: \
                         a restriction request will be stuck there until an operator acts",
                        key("stores")
                    ),
                )),
                _ => {}
            }
            stores.push(store);
        }
        let after_closure = *class.after_closure.get_ref();
        let legal_minimum = class.legal_minimum.as_ref().map(|m| *m.get_ref());
        if let Some(m) = &class.legal_minimum {
            if m.get_ref().is_zero() {
                return Err(
                    origin.error(m.span(), format!("{} must be longer than 0s, or left out", key("legal_minimum")))
                );
            }
            if after_closure < *m.get_ref() {
                return Err(origin.error(
                    class.after_closure.span(),
                    format!(
                        "{} ({after_closure}) is shorter than legal_minimum ({}): \
                         the class would be erased before the law allows",
                        key("after_closure"),
                        m.get_ref()
                    ),
                ));
            }
        }
        class_spans.push(class_span);
        classes.push(ClassPolicy { name, stores, after_closure, legal_minimum, erasure: *class.erasure.get_ref() });
    }
    // A store holding several classes must be told which one each call is
    // about, or erasing one class would erase the others with it.
    for (i, c) in classes.iter().enumerate() {
        for store in &c.stores {
            let shared = classes.iter().skip(i + 1).find(|o| o.stores.contains(store));
            if let (Some(other), Some(spec)) = (shared, cx.executors.get(store)) {
                if !spec.names_class() {
                    return Err(origin.error(
                        class_spans[i].clone(),
                        format!(
                            "privacy.classes.{}.stores: stores.{store} also holds class {:?}, and its executor \
                             does not name the class: add {{class}} to its path or argv",
                            c.name, other.name
                        ),
                    ));
                }
            }
        }
    }
    let policy = PrivacyPolicy {
        response_time: *response_time,
        warn_before,
        auto_approve: raw.auto_approve,
        classes,
        version: String::new(),
    }
    .seal();
    Ok((policy, warnings))
}
