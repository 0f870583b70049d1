//! Who asks for an operation: the authenticated principal (none with authentication off)
//! and the address it came from, and what follows from that: its care-team scope, whether
//! it may act, and how it is named in events and in the audit log.

use std::net::SocketAddr;
use std::sync::Arc;

use crate::auth::Principal;

#[derive(Debug, Clone, Default)]
pub struct Caller {
    pub principal: Option<Arc<Principal>>,
    pub peer: Option<SocketAddr>,
}

impl Caller {
    /// The care team a care-team or viewer token is confined to; `None` for every other
    /// caller (and with authentication off).
    pub fn team(&self) -> Option<(&Principal, &str)> {
        let p = self.principal.as_deref()?;
        Some((p, p.care_team()?))
    }

    /// Who is recorded as having acted, and the note recorded with it. With
    /// authentication it is the token's name, always: a name the caller gives is kept in
    /// the note ("stated by ..."), never instead of it. Without authentication it is
    /// `by`, else "unspecified".
    pub fn attribution(&self, by: &str, note: &str) -> (String, String) {
        match self.principal.as_deref() {
            Some(p) if !by.is_empty() && by != p.name => {
                let stated = format!("stated by: {by}");
                let note = if note.is_empty() {
                    stated
                } else {
                    format!("{stated}; {note}")
                };
                (p.name.clone(), note)
            }
            Some(p) => (p.name.clone(), note.to_string()),
            None if by.is_empty() => ("unspecified".to_string(), note.to_string()),
            None => (by.to_string(), note.to_string()),
        }
    }

    /// The audit log's actor: the token's name (with the request's `by`, when it names
    /// a person), else `by`, else the peer address.
    pub fn audit_actor(&self, by: &str) -> String {
        match (self.principal.as_deref(), by.is_empty()) {
            (Some(p), true) => format!("token {}", p.name),
            (Some(p), false) => format!("token {} ({by})", p.name),
            (None, false) => by.to_string(),
            (None, true) => match self.peer {
                Some(addr) => format!("unauthenticated {addr}"),
                None => "unauthenticated".to_string(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Role;

    fn ward() -> Caller {
        Caller {
            principal: Some(Arc::new(Principal {
                name: "ward-app".into(),
                role: Role::CareTeam("cardiology".into()),
            })),
            peer: None,
        }
    }

    #[test]
    fn the_audit_actor_names_the_token_then_by_then_the_address() {
        assert_eq!(Caller::default().audit_actor(""), "unauthenticated");
        let anonymous = Caller {
            principal: None,
            peer: Some("127.0.0.1:5".parse().unwrap()),
        };
        assert_eq!(anonymous.audit_actor(""), "unauthenticated 127.0.0.1:5");
        assert_eq!(anonymous.audit_actor("nurse-1"), "nurse-1");
        assert_eq!(ward().audit_actor(""), "token ward-app");
        assert_eq!(ward().audit_actor("nurse-1"), "token ward-app (nurse-1)");
    }

    #[test]
    fn events_name_the_token_and_keep_a_stated_name_in_the_note() {
        assert_eq!(
            ward().attribution("nurse-2", "called"),
            ("ward-app".into(), "stated by: nurse-2; called".into())
        );
        assert_eq!(
            ward().attribution("ward-app", ""),
            ("ward-app".into(), String::new())
        );
        assert_eq!(
            Caller::default().attribution("", "n"),
            ("unspecified".into(), "n".into())
        );
        assert_eq!(ward().team().map(|(_, t)| t), Some("cardiology"));
    }
}
