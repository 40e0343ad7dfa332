//! Bearer tokens and roles (product-spec §3, tokens file).
//!
//! Only SHA-256 digests of tokens are stored; a presented token is hashed and
//! compared with every known digest in constant time, so neither the file nor
//! the timing of a refusal reveals a token.

use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::path::Path;
use std::time::{Duration, Instant};
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
        self.by_digest(&Sha256::digest(presented.as_bytes()).into())
    }

    /// The entry whose token hashes to `digest`, compared as
    /// [`Tokens::authenticate`] does. The console's sessions keep a token's
    /// digest (never the token) and look it up on every page, so a token
    /// removed or given another role on reload takes its sessions with it.
    pub fn by_digest(&self, digest: &[u8; 32]) -> Option<&TokenEntry> {
        let mut found = None;
        for e in &self.entries {
            if bool::from(e.digest.ct_eq(digest)) && found.is_none() {
                found = Some(e);
            }
        }
        found
    }
}

/// How many source addresses [`AuthFailures`] tracks at most, so a flood
/// from many addresses cannot grow it without bound. When full, sources
/// whose window has passed go first, then the one tracked longest.
pub const MAX_TRACKED_SOURCES: usize = 10_000;

/// Failed authentications per source address (issue 9: 3,000 wrong tokens
/// at 2,500 per second met no limit and no log line).
///
/// A source that fails `max` times within `window` is answered 429 for
/// `window` from then on, whatever token it sends: checking its tokens
/// would keep telling a guesser which one is right. A source is an IPv4
/// address or an IPv6 /64 (one host's usual share). Each source's failures
/// are logged at most twice per window (its first failure, and the lock-out
/// with the count); the next window's first line carries what the last one
/// did not log. Logs name the source, never the token.
#[derive(Debug, Default)]
pub struct AuthFailures {
    sources: HashMap<IpAddr, Source>,
}

#[derive(Debug)]
struct Source {
    /// Start of the current window.
    since: Instant,
    /// Failures in the current window.
    failures: u32,
    /// Answered 429 until then.
    locked_until: Option<Instant>,
    /// Requests answered 429 in the current window.
    refused: u64,
}

impl AuthFailures {
    /// Before any token is looked at: `Err(how long)` while `ip` is locked
    /// out (the request is then counted as refused).
    pub fn check(&mut self, ip: IpAddr, now: Instant) -> Result<(), Duration> {
        match self.sources.get_mut(&source_key(ip)) {
            Some(s) => match s.locked_until {
                Some(until) if now < until => {
                    s.refused += 1;
                    Err(until - now)
                }
                _ => Ok(()),
            },
            None => Ok(()),
        }
    }

    /// Records a failed authentication from `ip`; locks the source out when
    /// this is its `max`-th failure within `window`.
    pub fn failed(&mut self, ip: IpAddr, now: Instant, max: u32, window: Duration) {
        let key = source_key(ip);
        if !self.sources.contains_key(&key) && self.sources.len() >= MAX_TRACKED_SOURCES {
            self.make_room(now, window);
        }
        let s = self.sources.entry(key).or_insert(Source { since: now, failures: 0, locked_until: None, refused: 0 });
        let locked = s.locked_until.is_some_and(|until| now < until);
        let (mut earlier_failures, mut earlier_refused) = (0, 0);
        if !locked && now.saturating_duration_since(s.since) >= window {
            // A new window; what the last one did not log goes in its first line.
            earlier_failures = s.failures.saturating_sub(1);
            earlier_refused = s.refused;
            *s = Source { since: now, failures: 0, locked_until: None, refused: 0 };
        }
        s.failures = s.failures.saturating_add(1);
        let secs = window.as_secs_f64();
        if s.failures == 1 {
            tracing::warn!(
                source = %key,
                earlier_failures,
                earlier_refused,
                "authentication failed (missing or unknown token); further failures from this source within {secs}s are counted, not logged"
            );
        }
        if s.failures >= max && s.locked_until.is_none() {
            s.locked_until = Some(now + window);
            tracing::warn!(
                source = %key,
                failures = s.failures,
                "too many failed authentications: every request from this source is answered 429 for {secs}s"
            );
        }
    }

    /// The number of sources tracked (bounded by [`MAX_TRACKED_SOURCES`]).
    pub fn len(&self) -> usize {
        self.sources.len()
    }

    /// True when no source is tracked.
    pub fn is_empty(&self) -> bool {
        self.sources.is_empty()
    }

    fn make_room(&mut self, now: Instant, window: Duration) {
        self.sources.retain(|_, s| {
            s.locked_until.is_some_and(|until| now < until) || now.saturating_duration_since(s.since) < window
        });
        if self.sources.len() >= MAX_TRACKED_SOURCES {
            if let Some(oldest) = self.sources.iter().min_by_key(|(_, s)| s.since).map(|(k, _)| *k) {
                self.sources.remove(&oldest);
            }
        }
    }
}

/// The unit a lock-out applies to: an IPv4 address (also when written as
/// an IPv4-mapped IPv6 address), or an IPv6 /64.
fn source_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !((1u128 << 64) - 1))),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_is_locked_out_after_max_failures_in_the_window_then_let_in_again() {
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let other: IpAddr = "192.0.2.8".parse().unwrap();
        let (t0, w) = (Instant::now(), Duration::from_secs(60));
        let mut t = AuthFailures::default();
        for i in 0..3 {
            assert!(t.check(ip, t0).is_ok(), "failure {i}");
            t.failed(ip, t0 + Duration::from_secs(i), 3, w);
        }
        assert_eq!(t.check(ip, t0 + Duration::from_secs(3)), Err(Duration::from_secs(59)));
        assert!(t.check(other, t0 + Duration::from_secs(3)).is_ok(), "only the failing source");
        assert!(t.check(ip, t0 + Duration::from_secs(62)).is_ok(), "the lock-out ends");
        // A new window: one more failure does not lock it again.
        t.failed(ip, t0 + Duration::from_secs(62), 3, w);
        assert!(t.check(ip, t0 + Duration::from_secs(63)).is_ok());
        // Failures spread wider than the window never lock.
        let mut t = AuthFailures::default();
        for i in 0..10 {
            t.failed(ip, t0 + Duration::from_secs(61 * i), 3, w);
            assert!(t.check(ip, t0 + Duration::from_secs(61 * i)).is_ok());
        }
    }

    /// 3,000 wrong tokens once met no log line; now a source's failures are
    /// logged, but at most twice a window, with counts, and never a token.
    #[test]
    fn failures_are_logged_with_the_source_and_counts_but_do_not_flood() {
        #[derive(Clone, Default)]
        struct Buf(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
        impl std::io::Write for Buf {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buf = Buf::default();
        let writer = buf.clone();
        let subscriber =
            tracing_subscriber::fmt().with_writer(move || writer.clone()).with_ansi(false).without_time().finish();
        let ip: IpAddr = "198.51.100.4".parse().unwrap();
        let (t0, w) = (Instant::now(), Duration::from_secs(60));
        tracing::subscriber::with_default(subscriber, || {
            let mut t = AuthFailures::default();
            for i in 0..3000u64 {
                let now = t0 + Duration::from_millis(i / 3);
                if t.check(ip, now).is_ok() {
                    t.failed(ip, now, 10, w);
                }
            }
            // The next window's first failure reports what the last did not.
            t.failed(ip, t0 + Duration::from_secs(200), 10, w);
        });
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(lines.iter().all(|l| l.contains("WARN") && l.contains("source=198.51.100.4")), "{text}");
        assert!(lines[1].contains("failures=10") && lines[1].contains("429"), "{text}");
        assert!(lines[2].contains("earlier_failures=9") && lines[2].contains("earlier_refused=2990"), "{text}");
    }

    #[test]
    fn the_table_stays_bounded_and_ipv6_counts_per_64() {
        let (t0, w) = (Instant::now(), Duration::from_secs(60));
        let mut t = AuthFailures::default();
        for i in 0..(MAX_TRACKED_SOURCES as u32 + 500) {
            t.failed(IpAddr::V4(std::net::Ipv4Addr::from(i)), t0, 5, w);
        }
        assert_eq!(t.len(), MAX_TRACKED_SOURCES);
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let mapped: IpAddr = "::ffff:192.0.2.9".parse().unwrap();
        assert_eq!(source_key(a), source_key(b));
        assert_eq!(source_key(mapped), "192.0.2.9".parse::<IpAddr>().unwrap());
        let mut t = AuthFailures::default();
        t.failed(a, t0, 2, w);
        t.failed(b, t0, 2, w);
        assert!(t.check(a, t0).is_err());
    }

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
