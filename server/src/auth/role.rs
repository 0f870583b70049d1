//! Roles of gRPC callers, and the authenticated identity a request carries.

use std::fmt;

/// What a token lets its holder do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// `Ingest` only; with prefixes, only for patient ids starting with one of them.
    Gateway { patient_prefixes: Vec<String> },
    /// `Alerts` only, and only the alerts of this care team (or escalated to it).
    CareTeam(String),
    /// What a care team sees, read only (a wall display): `Subscribe`, `ListActive`,
    /// `History` and `ListSilences`, never an action on an alert.
    Viewer(String),
    /// `Rules`, `Patients` and `Devices`.
    Admin,
}

/// The gRPC services a role is checked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    Ingest,
    Alerts,
    Rules,
    Patients,
    Devices,
}

impl Service {
    pub fn name(self) -> &'static str {
        match self {
            Service::Ingest => "Ingest",
            Service::Alerts => "Alerts",
            Service::Rules => "Rules",
            Service::Patients => "Patients",
            Service::Devices => "Devices",
        }
    }
}

impl Role {
    /// Parses `gateway`, `admin`, `care_team:{id}` or `viewer:{id}`.
    pub fn parse(text: &str, patient_prefixes: Vec<String>) -> Result<Role, String> {
        if text != "gateway" && !patient_prefixes.is_empty() {
            return Err("`patient_prefixes` applies to the gateway role only".into());
        }
        let team = |prefix: &str| text.strip_prefix(prefix).filter(|t| !t.is_empty());
        Ok(match text {
            "gateway" => Role::Gateway { patient_prefixes },
            "admin" => Role::Admin,
            _ => match (team("care_team:"), team("viewer:")) {
                (Some(team), _) => Role::CareTeam(team.to_string()),
                (_, Some(team)) => Role::Viewer(team.to_string()),
                _ => {
                    return Err(format!(
                        "unknown role '{text}'; expected gateway, admin, care_team:<id> or \
                         viewer:<id>"
                    ))
                }
            },
        })
    }

    pub fn may_call(&self, service: Service) -> bool {
        matches!(
            (self, service),
            (Role::Gateway { .. }, Service::Ingest)
                | (Role::CareTeam(_) | Role::Viewer(_), Service::Alerts)
                | (
                    Role::Admin,
                    Service::Rules | Service::Patients | Service::Devices
                )
        )
    }

    /// Which services this role may call, for error messages.
    pub fn services(&self) -> &'static str {
        match self {
            Role::Gateway { .. } => "Ingest",
            Role::CareTeam(_) => "Alerts",
            Role::Viewer(_) => "Alerts (read only)",
            Role::Admin => "Rules, Patients and Devices",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Role::Gateway { .. } => f.write_str("gateway"),
            Role::CareTeam(team) => write!(f, "care_team:{team}"),
            Role::Viewer(team) => write!(f, "viewer:{team}"),
            Role::Admin => f.write_str("admin"),
        }
    }
}

/// An authenticated caller: the token's name (for the audit log) and its role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub name: String,
    pub role: Role,
}

impl Principal {
    /// The care team this caller is confined to, if it is a care-team or viewer token.
    pub fn care_team(&self) -> Option<&str> {
        match &self.role {
            Role::CareTeam(team) | Role::Viewer(team) => Some(team),
            _ => None,
        }
    }

    /// Whether this caller may act on alerts (acknowledge, resolve, snooze, silence), not
    /// only read them.
    pub fn may_act(&self) -> bool {
        !matches!(self.role, Role::Viewer(_))
    }

    /// Whether this caller may publish readings for `patient_id`.
    pub fn may_publish_for(&self, patient_id: &str) -> bool {
        match &self.role {
            Role::Gateway { patient_prefixes } => {
                patient_prefixes.is_empty()
                    || patient_prefixes.iter().any(|p| patient_id.starts_with(p))
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_parse_and_confine() {
        let gw = Role::parse("gateway", vec!["ward3-".into()]).unwrap();
        assert!(gw.may_call(Service::Ingest));
        assert!(!gw.may_call(Service::Alerts));
        let team = Role::parse("care_team:cardiology", vec![]).unwrap();
        assert_eq!(team, Role::CareTeam("cardiology".into()));
        assert!(team.may_call(Service::Alerts));
        assert!(!team.may_call(Service::Ingest) && !team.may_call(Service::Rules));
        let admin = Role::parse("admin", vec![]).unwrap();
        assert!(admin.may_call(Service::Rules) && admin.may_call(Service::Devices));
        assert!(!admin.may_call(Service::Alerts) && !admin.may_call(Service::Ingest));
        assert!(Role::parse("care_team:", vec![]).is_err());
        let wall = Role::parse("viewer:cardiology", vec![]).unwrap();
        assert_eq!(wall, Role::Viewer("cardiology".into()));
        assert!(wall.may_call(Service::Alerts) && !wall.may_call(Service::Ingest));
        assert_eq!(wall.to_string(), "viewer:cardiology");
        let viewer = Principal {
            name: "ward-display".into(),
            role: wall,
        };
        assert_eq!(viewer.care_team(), Some("cardiology"));
        assert!(!viewer.may_act());
        assert!(Role::parse("viewer:", vec![]).is_err());
        assert!(Role::parse("root", vec![]).is_err());
        assert!(Role::parse("admin", vec!["p-".into()]).is_err());
        assert_eq!(team.to_string(), "care_team:cardiology");

        let p = Principal {
            name: "gw".into(),
            role: gw,
        };
        assert!(p.may_publish_for("ward3-17"));
        assert!(!p.may_publish_for("ward4-17"));
        let open = Principal {
            name: "gw".into(),
            role: Role::parse("gateway", vec![]).unwrap(),
        };
        assert!(open.may_publish_for("anyone"));
    }
}
