//! Executor templates: literal text and `{name}` placeholders, filled in
//! with a target's ids (re-checked) and the action.
//!
//! A copy of business data has `{resource}` and `{copy}`, a subject's
//! personal data `{subject}` and `{class}` (product-spec §8); `{tenant}`,
//! `{store}` and `{action}` exist for both. A store's templates use only its
//! own kind's (checked at config load, [`foreign`]), and a placeholder the
//! target does not have fails the render rather than becoming empty text.

use super::{Action, DataKind, ExecError, Item, Target};

/// Why a template does not parse. There is no escape for literal braces,
/// so every stray brace is one of these.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    /// A `}` without its `{`.
    #[error("unmatched '}}' in {template:?}")]
    UnmatchedClose {
        /// The whole template.
        template: String,
    },
    /// A `{` without its `}`.
    #[error("unclosed '{{' in {template:?}")]
    Unclosed {
        /// The whole template.
        template: String,
    },
    /// A `{name}` that is not one of the placeholders (a typo such as
    /// `{tennant}` must never be passed on verbatim).
    #[error(
        "unknown placeholder {{{name}}} in {template:?} \
         (known: {{tenant}} {{resource}} {{store}} {{copy}} {{subject}} {{class}} {{action}})"
    )]
    UnknownPlaceholder {
        /// What stood between the braces.
        name: String,
        /// The whole template.
        template: String,
    },
}

/// A placeholder an executor template may contain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Placeholder {
    Tenant,
    Resource,
    Store,
    Copy,
    Subject,
    Class,
    Action,
}

impl Placeholder {
    fn parse(name: &str) -> Option<Placeholder> {
        Some(match name {
            "tenant" => Placeholder::Tenant,
            "resource" => Placeholder::Resource,
            "store" => Placeholder::Store,
            "copy" => Placeholder::Copy,
            "subject" => Placeholder::Subject,
            "class" => Placeholder::Class,
            "action" => Placeholder::Action,
            _ => return None,
        })
    }

    pub(super) fn name(self) -> &'static str {
        match self {
            Placeholder::Tenant => "tenant",
            Placeholder::Resource => "resource",
            Placeholder::Store => "store",
            Placeholder::Copy => "copy",
            Placeholder::Subject => "subject",
            Placeholder::Class => "class",
            Placeholder::Action => "action",
        }
    }

    /// The kind of data that has this placeholder; `None`: both kinds.
    pub(super) fn data(self) -> Option<DataKind> {
        match self {
            Placeholder::Resource | Placeholder::Copy => Some(DataKind::Business),
            Placeholder::Subject | Placeholder::Class => Some(DataKind::Personal),
            Placeholder::Tenant | Placeholder::Store | Placeholder::Action => None,
        }
    }

    /// The placeholder naming the item itself, which every `fs` path and
    /// `command` argv of a store of this kind must hold: without it, one
    /// resource's (one person's) call would reach its siblings.
    pub(super) fn naming(data: DataKind) -> Placeholder {
        match data {
            DataKind::Business => Placeholder::Resource,
            DataKind::Personal => Placeholder::Subject,
        }
    }

    /// The value this placeholder stands for; an error when the target's
    /// kind of data has no such field (never an empty string). Id fields
    /// are re-checked so nothing unchecked reaches a path, argv or body:
    /// tenants, resources, stores and copies with
    /// [`crate::ids::check_stored_id`] (the alphabet rule: ids stored before
    /// new ids were refused a leading `-` must still be deletable;
    /// `render_args` keeps them from becoming options), subjects and classes,
    /// which are newer than that rule, with [`crate::ids::check_id`].
    pub(super) fn value(self, action: Action, target: &Target) -> Result<&str, ExecError> {
        let value = match (self, &target.item) {
            (Placeholder::Action, _) => return Ok(action.as_str()),
            (Placeholder::Tenant, _) => &target.tenant,
            (Placeholder::Store, _) => &target.store,
            (Placeholder::Resource, Item::Copy { resource, .. }) => resource,
            (Placeholder::Copy, Item::Copy { copy, .. }) => copy,
            (Placeholder::Subject, Item::Personal { subject, .. }) => subject,
            (Placeholder::Class, Item::Personal { class, .. }) => class,
            (Placeholder::Resource | Placeholder::Copy | Placeholder::Subject | Placeholder::Class, item) => {
                return Err(ExecError::NotInTarget { field: self.name(), data: item.data() });
            }
        };
        let check: fn(&str) -> Result<(), &'static str> = match self {
            Placeholder::Subject | Placeholder::Class => crate::ids::check_id,
            _ => crate::ids::check_stored_id,
        };
        check(value).map_err(|reason| ExecError::InvalidTarget { field: self.name(), reason })?;
        Ok(value)
    }
}

/// One piece of a parsed template.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Piece<'a> {
    Literal(&'a str),
    Placeholder(Placeholder),
}

/// How many id placeholders (all but `{action}`) a piece of template holds. Ids may contain `- . _ :`, so two ids joined
/// in one path component or argument are ambiguous (`{tenant}-{resource}`
/// is `acme-db` + `1` and `acme` + `db-1` alike): at most one is allowed.
pub(super) fn id_placeholders(pieces: &[Piece<'_>]) -> usize {
    pieces.iter().filter(|p| matches!(p, Piece::Placeholder(ph) if *ph != Placeholder::Action)).count()
}

/// Splits a template into literal text and `{name}` placeholders.
///
/// There is no escape for literal braces: an unknown `{x}` or a stray brace
/// is an error, so a typo like `{tennant}` can never be passed on verbatim.
pub(super) fn parse_template(template: &str) -> Result<Vec<Piece<'_>>, TemplateError> {
    let mut pieces = Vec::new();
    let mut rest = template;
    while !rest.is_empty() {
        match rest.find(['{', '}']) {
            None => {
                pieces.push(Piece::Literal(rest));
                break;
            }
            Some(i) => {
                if i > 0 {
                    pieces.push(Piece::Literal(&rest[..i]));
                }
                if rest[i..].starts_with('}') {
                    return Err(TemplateError::UnmatchedClose { template: template.to_owned() });
                }
                let after = &rest[i + 1..];
                let close = after
                    .find(['{', '}'])
                    .filter(|&j| after[j..].starts_with('}'))
                    .ok_or_else(|| TemplateError::Unclosed { template: template.to_owned() })?;
                let name = &after[..close];
                let ph = Placeholder::parse(name).ok_or_else(|| TemplateError::UnknownPlaceholder {
                    name: name.to_owned(),
                    template: template.to_owned(),
                })?;
                pieces.push(Piece::Placeholder(ph));
                rest = &after[close + 1..];
            }
        }
    }
    Ok(pieces)
}

/// Substitutes placeholders. Fails if any id used is not a valid id.
pub(super) fn render(pieces: &[Piece<'_>], action: Action, target: &Target) -> Result<String, ExecError> {
    let mut out = String::new();
    for piece in pieces {
        match piece {
            Piece::Literal(s) => out.push_str(s),
            Piece::Placeholder(p) => out.push_str(p.value(action, target)?),
        }
    }
    Ok(out)
}

pub(super) fn contains(pieces: &[Piece<'_>], wanted: Placeholder) -> bool {
    pieces.contains(&Piece::Placeholder(wanted))
}

/// The first placeholder in `pieces` that data of kind `data` does not have
/// (`{subject}` in a business store's template, `{resource}` in a personal
/// one's): refused at config load, so it never reaches a render.
pub(super) fn foreign(pieces: &[Piece<'_>], data: DataKind) -> Option<Placeholder> {
    pieces.iter().find_map(|p| match p {
        Piece::Placeholder(ph) if ph.data().is_some_and(|d| d != data) => Some(*ph),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_parsing() {
        assert_eq!(
            parse_template("--t={tenant}.x").unwrap(),
            vec![Piece::Literal("--t="), Piece::Placeholder(Placeholder::Tenant), Piece::Literal(".x")]
        );
        assert_eq!(parse_template("").unwrap(), vec![]);
        for bad in ["{x}", "{}", "{tenant", "tenant}", "{{tenant}}", "{ten{ant}", "a}b{", "{subjects}", "{Class}"] {
            assert!(parse_template(bad).is_err(), "{bad:?} accepted");
        }
        let err = parse_template("{subjet}").unwrap_err().to_string();
        assert!(err.contains("unknown placeholder {subjet}") && err.contains("{subject} {class}"), "{err}");
    }

    /// A placeholder the target's kind of data has not is an error naming
    /// it, never an empty string; subjects and classes are held to the rule
    /// for new ids (no leading '-'), stored resource ids to the alphabet.
    #[test]
    fn rendering_needs_the_targets_own_fields() {
        let r = |t: &str, target: &Target| render(&parse_template(t).unwrap(), Action::Delete, target);
        let person = Target::personal("t1", "crm", "u7", "contact");
        let copy = Target::copy("t1", "snap", "r1", "c1");
        assert_eq!(r("{tenant}/{subject}/{class}/{store}/{action}", &person).unwrap(), "t1/u7/contact/crm/delete");
        assert_eq!(r("{tenant}/{resource}/{copy}", &copy).unwrap(), "t1/r1/c1");
        for (t, target, field, data) in [
            ("{resource}", &person, "resource", DataKind::Personal),
            ("x{copy}", &person, "copy", DataKind::Personal),
            ("{subject}", &copy, "subject", DataKind::Business),
            ("{class}", &copy, "class", DataKind::Business),
        ] {
            let err = r(t, target).unwrap_err();
            assert!(
                matches!(err, ExecError::NotInTarget { field: f, data: d } if f == field && d == data),
                "{t}: {err}"
            );
        }
        let dashed = Target::personal("t1", "crm", "-u7", "contact");
        assert!(matches!(r("{subject}", &dashed), Err(ExecError::InvalidTarget { field: "subject", .. })));
        assert_eq!(r("{resource}", &Target::copy("t1", "snap", "-r1", "c1")).unwrap(), "-r1");
    }
}
