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
}
