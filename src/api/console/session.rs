//! The console's sessions (issue 13.8): a browser cannot send a bearer
//! header when it follows a link, so `/console/login` takes the token once
//! and answers with a cookie naming a session instead.
//!
//! The cookie holds a random 256-bit session id and nothing else: not the
//! token, not the role. The daemon keeps, in memory only, the SHA-256 of
//! that id (so a dump of this table gives no usable cookie) mapped to the
//! SHA-256 of the token it was opened with (what the tokens file already
//! holds) and the session's expiry. Every page looks the token up again by
//! that digest, so removing a token or changing its role on reload ends or
//! changes its sessions at once. A restart ends every session.
//!
//! Looking a session up hashes the presented id and finds the digest in a
//! map: what a timing difference could reveal is about the digest of a
//! random id, never about a valid id's bytes.

use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// How long a session lasts from login, whatever is done with it: a
/// working day, after which the token is asked for again.
pub const SESSION_LIFETIME: Duration = Duration::from_secs(8 * 3600);

/// The most sessions kept at once; past it, expired ones go first, then
/// the oldest, so logins in a loop cannot grow the table without bound.
pub const MAX_SESSIONS: usize = 1_000;

/// A session id, as the cookie carries it (64 hex digits).
#[derive(Clone, PartialEq, Eq)]
pub struct SessionId(String);

impl SessionId {
    /// The cookie's value.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What a session stands for.
#[derive(Clone, Copy, Debug)]
struct Session {
    /// SHA-256 of the token it was opened with.
    token_digest: [u8; 32],
    /// When it was opened (to evict the oldest).
    opened: Instant,
    /// When it ends.
    expires: Instant,
}

/// The open sessions, by the SHA-256 of their ids.
#[derive(Debug, Default)]
pub struct Sessions {
    open: HashMap<[u8; 32], Session>,
}

/// Why no session could be opened.
#[derive(Debug, thiserror::Error)]
#[error("no random bytes for a session id: {0}")]
pub struct NoRandom(getrandom::Error);

fn digest(id: &str) -> [u8; 32] {
    Sha256::digest(id.as_bytes()).into()
}

impl Sessions {
    /// Opens a session for the token whose SHA-256 is `token_digest`, from
    /// `now`, and gives its id (for the cookie).
    pub fn open(&mut self, token_digest: [u8; 32], now: Instant) -> Result<SessionId, NoRandom> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(NoRandom)?;
        let id = hex::encode(bytes);
        if self.open.len() >= MAX_SESSIONS {
            self.open.retain(|_, s| s.expires > now);
        }
        if self.open.len() >= MAX_SESSIONS {
            if let Some(oldest) = self.open.iter().min_by_key(|(_, s)| s.opened).map(|(k, _)| *k) {
                self.open.remove(&oldest);
            }
        }
        self.open.insert(digest(&id), Session { token_digest, opened: now, expires: now + SESSION_LIFETIME });
        Ok(SessionId(id))
    }

    /// The token digest of the session `id` names, if it is open and not
    /// expired at `now` (an expired one is dropped).
    pub fn token_of(&mut self, id: &str, now: Instant) -> Option<[u8; 32]> {
        let key = digest(id);
        match self.open.get(&key) {
            Some(s) if s.expires > now => Some(s.token_digest),
            Some(_) => {
                self.open.remove(&key);
                None
            }
            None => None,
        }
    }

    /// Ends the session `id` names (logout); nothing if there is none.
    pub fn close(&mut self, id: &str) {
        self.open.remove(&digest(id));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A session is found by its id until it expires or is closed; ids
    /// differ from one login to the next; the table stays bounded.
    #[test]
    fn sessions_open_expire_close_and_stay_bounded() {
        let mut s = Sessions::default();
        let t0 = Instant::now();
        let a = s.open([1; 32], t0).unwrap();
        let b = s.open([2; 32], t0).unwrap();
        assert!(a != b);
        assert_eq!(a.as_str().len(), 64);
        assert_eq!(s.token_of(a.as_str(), t0), Some([1; 32]));
        assert_eq!(s.token_of("not-a-session", t0), None);
        assert_eq!(s.token_of(b.as_str(), t0 + SESSION_LIFETIME), None);
        s.close(a.as_str());
        assert_eq!(s.token_of(a.as_str(), t0), None);
        for _ in 0..MAX_SESSIONS + 10 {
            s.open([3; 32], t0).unwrap();
        }
        assert_eq!(s.open.len(), MAX_SESSIONS);
    }
}
