//! Identifiers that cross the API: event, tenant, resource, hold and copy ids.
//!
//! product-spec §5: every id is 1 to 128 characters of `A-Z a-z 0-9 . _ : -`
//! and neither `.` nor `..`. Holding every id to this alphabet is what lets
//! the `fs` executor build paths and the `command` executor build argv from
//! ids without any of them naming a parent directory, an option or a shell
//! construct. For the same reason a new id may not start with `-` (issue 9):
//! a program given `-t` as an argument reads an option, so a tenant `-t`
//! could never be deleted by a `command` executor.

/// Why a string is not a valid new identifier (the message names the rule
/// broken). Every id that enters the daemon (events, config names) goes
/// through this.
pub fn check_id(value: &str) -> Result<(), &'static str> {
    check_stored_id(value)?;
    if value.starts_with('-') {
        return Err("must not start with \"-\" (a program could read it as an option)");
    }
    Ok(())
}

/// The alphabet rule alone, without the leading-`-` rule, for ids that
/// may have been stored before that rule existed: looking a resource up and
/// building an executor's target. Such an id still cannot name a parent
/// directory or a shell construct, and the `command` executor refuses to
/// pass one as a leading argument unless a literal `--` precedes it, so a
/// resource stored as `-t` can still be read, retried and deleted.
pub fn check_stored_id(value: &str) -> Result<(), &'static str> {
    if value.is_empty() {
        return Err("must not be empty");
    }
    if value.len() > 128 {
        return Err("must be at most 128 characters");
    }
    if value == "." || value == ".." {
        return Err("must not be \".\" or \"..\"");
    }
    if !value.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-')) {
        return Err("may only contain A-Z a-z 0-9 . _ : -");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{check_id, check_stored_id};

    #[test]
    fn accepts_the_spec_alphabet_only() {
        assert!(check_id("vm-01.eu_west:2").is_ok());
        assert!(check_id("a-").is_ok());
        assert!(check_id(&"a".repeat(128)).is_ok());
        for bad in ["", ".", "..", "a/b", "a b", "ä", "$(x)", "x\n"] {
            assert!(check_id(bad).is_err(), "{bad:?} accepted");
            assert!(check_stored_id(bad).is_err(), "{bad:?} accepted as stored");
        }
        assert!(check_id(&"a".repeat(129)).is_err());
    }

    #[test]
    fn a_new_id_may_not_start_with_a_dash_but_a_stored_one_is_still_found() {
        for dashed in ["-", "-t", "--", "-rf", "--all"] {
            let e = check_id(dashed).unwrap_err();
            assert!(e.contains("must not start with \"-\""), "{dashed:?}: {e}");
            assert!(check_stored_id(dashed).is_ok(), "{dashed:?}");
        }
    }
}
