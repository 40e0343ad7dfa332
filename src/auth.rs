//! Bearer tokens and roles (product-spec §3, tokens file).
//!
//! Only SHA-256 digests of tokens are stored; a presented token is hashed and
//! compared with every known digest in constant time, so neither the file nor
//! the timing of a refusal reveals a token.

use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::path::Path;
use subtle::ConstantTimeEq;

/// What a token may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Billing and operations feeds: may post billing events.
    Ingest,
    /// May also place and release holds, pause, resume, approve; reads everything.
    Operator,
    /// Reads everything, changes nothing.
    Auditor,
    /// May do everything, including moving a manual clock.
    Admin,
}

/// What a request wants to do, for the role check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Permission {
    /// Post billing events (created, renewed, released, terminated, arrears, backups).
    PostBillingEvent,
    /// Post operator events (holds, reinstatement).
    PostOperatorEvent,
    /// Read resources, forecasts, audit, certificates.
    Read,
    /// Pause, resume, approve.
    Operate,
    /// Move the manual clock.
    MoveClock,
}

impl Role {
    /// The permission table of product-spec §3.
    pub fn allows(self, p: Permission) -> bool {
        use Permission::*;
        match self {
            Role::Admin => true,
            Role::Operator => matches!(p, PostBillingEvent | PostOperatorEvent | Read | Operate),
            Role::Auditor => matches!(p, Read),
            Role::Ingest => matches!(p, PostBillingEvent),
        }
    }
}

/// A token error in the tokens file.
#[derive(Debug, thiserror::Error)]
pub enum TokensError {
    /// The file could not be read.
    #[error("{path}: cannot read tokens file: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not a valid tokens file.
    #[error("{path}:{line}:{col}: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        col: usize,
        /// What is wrong.
        message: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTokens {
    #[serde(default)]
    token: Vec<toml::Spanned<RawToken>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawToken {
    name: String,
    role: Role,
    sha256: String,
}

/// A known token: its name (for logs) and role.
#[derive(Clone, Debug)]
pub struct TokenEntry {
    /// Who it belongs to (logged; the token itself never is).
    pub name: String,
    /// What it may do.
    pub role: Role,
    digest: [u8; 32],
}

/// The set of known tokens. Empty means every request but `/healthz` is refused.
#[derive(Clone, Debug, Default)]
pub struct Tokens {
    entries: Vec<TokenEntry>,
}

/// Hex SHA-256 of a token, as the tokens file stores it.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

impl Tokens {
    /// Loads a tokens file.
    pub fn load(path: &Path) -> Result<Tokens, TokensError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| TokensError::Read { path: path.display().to_string(), source })?;
        let invalid = |span: std::ops::Range<usize>, message: String| {
            let (line, col) = crate::config::line_col(&text, span.start);
            TokensError::Invalid { path: path.display().to_string(), line, col, message }
        };
        let raw: RawTokens = toml::from_str(&text)
            .map_err(|e| invalid(e.span().unwrap_or(0..0), e.message().trim().replace('\n', " ")))?;
        let mut entries = Vec::new();
        for t in raw.token {
            let span = t.span();
            let t = t.into_inner();
            let mut digest = [0u8; 32];
            hex::decode_to_slice(t.sha256.trim(), &mut digest)
                .map_err(|_| invalid(span.clone(), format!("token {:?}: sha256 must be 64 hex digits", t.name)))?;
            entries.push(TokenEntry { name: t.name, role: t.role, digest });
        }
        Ok(Tokens { entries })
    }

    /// Builds a set from (name, role, token) triples; for tests and tools.
    pub fn from_plain(list: &[(&str, Role, &str)]) -> Tokens {
        let entries = list
            .iter()
            .map(|(name, role, token)| TokenEntry {
                name: name.to_string(),
                role: *role,
                digest: Sha256::digest(token.as_bytes()).into(),
            })
            .collect();
        Tokens { entries }
    }

    /// The entry a presented token matches. Every entry is compared, in
    /// constant time, whatever matches first.
    pub fn authenticate(&self, presented: &str) -> Option<&TokenEntry> {
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        let mut found = None;
        for e in &self.entries {
            if bool::from(e.digest.ct_eq(&digest)) && found.is_none() {
                found = Some(e);
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_follow_the_spec_table() {
        use Permission::*;
        assert!(Role::Ingest.allows(PostBillingEvent));
        assert!(!Role::Ingest.allows(PostOperatorEvent));
        assert!(!Role::Ingest.allows(Read));
        assert!(!Role::Auditor.allows(PostBillingEvent));
        assert!(Role::Auditor.allows(Read));
        assert!(Role::Operator.allows(Operate) && !Role::Operator.allows(MoveClock));
        assert!(Role::Admin.allows(MoveClock));
    }

    #[test]
    fn loads_hashed_tokens_and_rejects_bad_digests() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("tokens.toml");
        std::fs::write(
            &p,
            format!("[[token]]\nname = \"billing\"\nrole = \"ingest\"\nsha256 = \"{}\"\n", hash_token("s3cret")),
        )
        .unwrap();
        let t = Tokens::load(&p).unwrap();
        assert_eq!(t.authenticate("s3cret").unwrap().name, "billing");
        assert!(t.authenticate("s3cre").is_none());
        std::fs::write(&p, "[[token]]\nname = \"x\"\nrole = \"ingest\"\nsha256 = \"abc\"\n").unwrap();
        let e = Tokens::load(&p).unwrap_err().to_string();
        assert!(e.contains(":1:1:") && e.contains("64 hex"), "{e}");
        std::fs::write(&p, "[[token]]\nname = \"x\"\nrole = \"root\"\nsha256 = \"abc\"\n").unwrap();
        let e = Tokens::load(&p).unwrap_err().to_string();
        assert!(e.contains(":3:"), "{e}");
    }
}
