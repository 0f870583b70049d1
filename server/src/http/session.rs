//! Console sign-in sessions: a bearer token exchanged once for a random session id in an
//! `HttpOnly; SameSite=Strict` cookie, with a per-session CSRF token that every state
//! change must echo in a header. Sessions live in memory (a restart signs everyone out),
//! expire after [`IDLE`] without use or [`LIFETIME`] in all, and are bounded in number.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::auth::token::{digest, hex, Digest};
use crate::auth::Principal;

/// The cookie's name.
pub const COOKIE: &str = "vigil_session";
/// A session unused this long is gone.
pub const IDLE: Duration = Duration::from_secs(12 * 3600);
/// No session outlives this (a shift and its handover).
pub const LIFETIME: Duration = Duration::from_secs(14 * 3600);
/// Sessions held at once, by default.
pub const DEFAULT_MAX_SESSIONS: usize = 10_000;

#[derive(Debug, Clone)]
pub struct Session {
    pub principal: Arc<Principal>,
    pub csrf: String,
    created: Instant,
    last_used: Instant,
}

/// A new session's cookie value and CSRF token.
pub struct Issued {
    pub cookie: String,
    pub csrf: String,
}

/// Why a session could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("the console holds its maximum of {0} sessions; sign out unused ones or retry later")]
    Full(usize),
    #[error("the system's random source failed: {0}")]
    Random(getrandom::Error),
}

/// Open sessions by the SHA-256 of their id (the id itself is not kept).
pub struct Sessions {
    open: Mutex<HashMap<Digest, Session>>,
    max: usize,
}

impl Sessions {
    pub fn new(max: usize) -> Sessions {
        Sessions {
            open: Mutex::new(HashMap::new()),
            max,
        }
    }

    pub fn open(&self, principal: Arc<Principal>, now: Instant) -> Result<Issued, SessionError> {
        let cookie = random_hex().map_err(SessionError::Random)?;
        let csrf = random_hex().map_err(SessionError::Random)?;
        let mut open = self.open.lock();
        if open.len() >= self.max {
            open.retain(|_, s| alive(s, now));
            if open.len() >= self.max {
                return Err(SessionError::Full(self.max));
            }
        }
        open.insert(
            digest(&cookie),
            Session {
                principal,
                csrf: csrf.clone(),
                created: now,
                last_used: now,
            },
        );
        Ok(Issued { cookie, csrf })
    }

    /// The session of a cookie value, if it is open and alive (its use is recorded).
    pub fn find(&self, cookie: &str, now: Instant) -> Option<Session> {
        let key = digest(cookie);
        let mut open = self.open.lock();
        let session = open.get_mut(&key)?;
        if !alive(session, now) {
            open.remove(&key);
            return None;
        }
        session.last_used = now;
        Some(session.clone())
    }

    pub fn close(&self, cookie: &str) -> bool {
        self.open.lock().remove(&digest(cookie)).is_some()
    }

    pub fn len(&self) -> usize {
        self.open.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.open.lock().is_empty()
    }
}

fn alive(s: &Session, now: Instant) -> bool {
    now.duration_since(s.last_used) < IDLE && now.duration_since(s.created) < LIFETIME
}

fn random_hex() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(hex(&bytes))
}

/// The value of cookie `name` in a `Cookie` header.
pub fn cookie_value<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header
        .split(';')
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Role;

    fn nurse() -> Arc<Principal> {
        Arc::new(Principal {
            name: "ward-nurse".into(),
            role: Role::CareTeam("cardiology".into()),
        })
    }

    #[test]
    fn sessions_expire_and_are_bounded() {
        let sessions = Sessions::new(2);
        let t0 = Instant::now();
        let a = sessions.open(nurse(), t0).unwrap();
        assert_eq!(a.cookie.len(), 64);
        assert_ne!(a.cookie, a.csrf);
        let found = sessions
            .find(&a.cookie, t0 + Duration::from_secs(60))
            .unwrap();
        assert_eq!(found.csrf, a.csrf);
        assert!(sessions.find("nope", t0).is_none());
        // Idle too long.
        assert!(sessions
            .find(&a.cookie, t0 + IDLE + Duration::from_secs(61))
            .is_none());
        let b = sessions.open(nurse(), t0).unwrap();
        let _c = sessions.open(nurse(), t0).unwrap();
        assert!(matches!(
            sessions.open(nurse(), t0),
            Err(SessionError::Full(2))
        ));
        // Expired sessions make room.
        assert!(sessions.open(nurse(), t0 + LIFETIME).is_ok());
        assert!(sessions.find(&b.cookie, t0 + LIFETIME).is_none());
        let d = sessions.open(nurse(), t0 + LIFETIME).unwrap();
        assert!(sessions.close(&d.cookie));
        assert!(sessions.find(&d.cookie, t0 + LIFETIME).is_none());
    }

    #[test]
    fn cookies_are_found_by_name() {
        assert_eq!(
            cookie_value("a=1; vigil_session=xyz; b=2", COOKIE),
            Some("xyz")
        );
        assert_eq!(cookie_value("a=1", COOKIE), None);
    }
}
