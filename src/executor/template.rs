//! Executor templates: literal text and `{name}` placeholders, filled in
//! with a copy's ids (re-checked) and the action.

use super::{Action, ExecError, Target};

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
         (known: {{tenant}} {{resource}} {{store}} {{copy}} {{action}})"
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
    Action,
}

impl Placeholder {
    fn parse(name: &str) -> Option<Placeholder> {
        Some(match name {
            "tenant" => Placeholder::Tenant,
            "resource" => Placeholder::Resource,
            "store" => Placeholder::Store,
            "copy" => Placeholder::Copy,
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
            Placeholder::Action => "action",
        }
    }

    /// The value this placeholder stands for. Id fields are re-checked with
    /// [`crate::ids::check_stored_id`] so nothing unchecked reaches a path or
    /// argv (the alphabet rule: ids stored before new ids were refused a
    /// leading `-` must still be deletable; `render_args` keeps them from
    /// becoming options).
    pub(super) fn value(self, action: Action, target: &Target) -> Result<&str, ExecError> {
        let value = match self {
            Placeholder::Action => return Ok(action.as_str()),
            Placeholder::Tenant => &target.tenant,
            Placeholder::Resource => &target.resource,
            Placeholder::Store => &target.store,
            Placeholder::Copy => &target.copy,
        };
        crate::ids::check_stored_id(value).map_err(|reason| ExecError::InvalidTarget { field: self.name(), reason })?;
        Ok(value)
    }
}

/// One piece of a parsed template.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Piece<'a> {
    Literal(&'a str),
    Placeholder(Placeholder),
}

/// How many id placeholders (`{tenant}` `{resource}` `{store}` `{copy}`)
/// a piece of template holds. Ids may contain `- . _ :`, so two ids joined
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
        for bad in ["{x}", "{}", "{tenant", "tenant}", "{{tenant}}", "{ten{ant}", "a}b{"] {
            assert!(parse_template(bad).is_err(), "{bad:?} accepted");
        }
    }
}
