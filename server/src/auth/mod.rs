//! Authentication and authorisation: who a gRPC caller or MQTT device is (bearer tokens,
//! device secrets) and what it may do (roles, its own patient's topics). Off unless the
//! configuration says `[auth] enabled = true`; once on, everything fails closed.

pub mod access_token;
pub mod device;
pub mod failure;
pub mod login;
pub mod oidc;
pub mod repeat_limit;
pub mod role;
pub mod secret;
pub mod slow_checks;
pub mod throttle;
pub mod token;

use std::collections::HashMap;
use std::sync::Arc;

pub use device::DeviceBook;
pub use failure::{AuthFailure, FailureLog};
pub use login::{LoginRefusal, Logins};
pub use role::{Principal, Role};

/// The credentials the server accepts, and whether it asks for them at all.
pub struct Auth {
    pub enabled: bool,
    /// SHA-256 of each token → who it is.
    tokens: HashMap<[u8; 32], Arc<Principal>>,
    pub devices: Arc<DeviceBook>,
    pub failures: FailureLog,
    pub logins: Logins,
    /// The hospital provider's JWT access tokens, accepted on gRPC with `[auth.oidc]`.
    pub access_tokens: Option<Arc<access_token::AccessTokens>>,
}

impl Auth {
    pub fn new(
        enabled: bool,
        tokens: Vec<(token::Digest, Principal)>,
        devices: DeviceBook,
        failures: FailureLog,
        logins: Logins,
    ) -> Auth {
        Auth {
            enabled,
            tokens: tokens
                .into_iter()
                .map(|(digest, p)| (digest.0, Arc::new(p)))
                .collect(),
            devices: Arc::new(devices),
            failures,
            logins,
            access_tokens: None,
        }
    }

    /// A device's login with a secret from `addr` (see [`Logins::device`]).
    pub async fn login_device(
        &self,
        addr: std::net::IpAddr,
        id: &str,
        secret: &[u8],
    ) -> Result<String, LoginRefusal> {
        self.logins.device(&self.devices, addr, id, secret).await
    }

    /// Who presents `token`, if anyone. Tokens are 256-bit random, so their SHA-256 is a
    /// safe lookup key (a slow password hash protects guessable secrets, not these).
    pub fn token(&self, token: &str) -> Option<Arc<Principal>> {
        self.tokens.get(&token::digest(token).0).cloned()
    }

    pub fn token_count(&self) -> usize {
        self.tokens.len()
    }

    /// Checks a call to `service` that presented `bearer` (the `Authorization` value's
    /// token, if any) from `peer`: a configured token or the identity provider's access
    /// token, whose role may call the service. Refusals are recorded (by address, whatever
    /// the port) and say what to do.
    pub fn authenticate(
        &self,
        bearer: Option<&str>,
        service: role::Service,
        peer: Option<std::net::SocketAddr>,
    ) -> Result<Arc<Principal>, Refusal> {
        let peer_text = peer.map_or_else(|| "unknown peer".to_string(), |a| a.to_string());
        let source = peer.map_or_else(|| "unknown peer".to_string(), |a| a.ip().to_string());
        let name = service.name();
        let Some(token) = bearer else {
            self.failures
                .record(AuthFailure::MissingToken, &source, &peer_text, name);
            return Err(Refusal::Unauthenticated(
                "this server requires a bearer token: send `authorization: Bearer <token>` \
                 (an operator creates one with `vigil token create`)"
                    .into(),
            ));
        };
        let token = token.trim();
        let principal = match (self.token(token), &self.access_tokens) {
            (Some(p), _) => p,
            (None, Some(jwt)) if access_token::looks_like_jwt(token) => {
                match jwt.verify(token, crate::clock::now_ms()) {
                    Ok(p) => Arc::new(p),
                    Err(why) => {
                        self.failures
                            .record(AuthFailure::BadToken, &source, &peer_text, name);
                        return Err(Refusal::Unauthenticated(format!(
                            "the identity provider's access token is refused: {why}"
                        )));
                    }
                }
            }
            (None, _) => {
                self.failures
                    .record(AuthFailure::BadToken, &source, &peer_text, name);
                return Err(Refusal::Unauthenticated(
                    "the bearer token is not valid on this server (revoked, mistyped, or from \
                     another installation)"
                        .into(),
                ));
            }
        };
        if !principal.role.may_call(service) {
            self.failures.record(
                AuthFailure::WrongRole,
                &principal.name,
                &principal.name,
                name,
            );
            return Err(Refusal::Forbidden(format!(
                "token '{}' has role {}, which may call {} only, not {name}",
                principal.name,
                principal.role,
                principal.role.services()
            )));
        }
        Ok(principal)
    }
}

/// Why a call was refused: no valid credentials, or credentials whose role does not allow
/// it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    Unauthenticated(String),
    Forbidden(String),
}
