//! gRPC callers may present the hospital provider's JWT access tokens beside Vigil's own
//! tokens (`[auth.oidc]`). A token is accepted only when its signature verifies against a
//! key of the issuer's published set (JWKS, kept fresh in the background), with an
//! asymmetric algorithm, from the configured issuer, for Vigil's audience, within its
//! validity by the server's clock, and for a person or application in a mapped group.
//! Anything else is refused: with no keys loaded yet, every such token is.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use openidconnect::core::{CoreJsonWebKey, CoreJsonWebKeySet, CoreJwsSigningAlgorithm};
use openidconnect::{IssuerUrl, JsonWebKey};
use parking_lot::RwLock;
use serde_json::Value;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::oidc::{groups_in, jwt_part, person_name, role_of, OidcSettings};
use super::Principal;

/// Leeway for clocks that disagree a little, on `exp` and `nbf`.
const LEEWAY_S: i64 = 30;
/// How often the issuer's keys are read again (and at once when a token names an unknown
/// key, at most this often when reading fails).
const REFRESH: Duration = Duration::from_secs(600);
const RETRY: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum AccessTokenError {
    #[error("not a JWT")]
    Malformed,
    #[error("signed with {0}, which Vigil does not accept (asymmetric algorithms only)")]
    Algorithm(String),
    #[error("the identity provider's signing keys are not loaded yet: retry shortly")]
    NoKeys,
    #[error("signed by a key the identity provider does not publish")]
    UnknownKey,
    #[error("its signature does not verify")]
    Signature,
    #[error("issued by another issuer")]
    Issuer,
    #[error("not issued for Vigil (audience)")]
    Audience,
    #[error("expired, or not valid yet")]
    Expired,
    #[error("its holder is in no group that this Vigil gives a role to")]
    NoRole,
}

pub struct AccessTokens {
    settings: OidcSettings,
    keys: RwLock<Option<Arc<CoreJsonWebKeySet>>>,
    stale: Notify,
}

fn part(text: &str) -> Result<Value, AccessTokenError> {
    jwt_part(text).ok_or(AccessTokenError::Malformed)
}

/// Whether `token` has the shape of a JWT (three base64url parts).
pub fn looks_like_jwt(token: &str) -> bool {
    token.split('.').count() == 3 && token.starts_with("eyJ")
}

impl AccessTokens {
    pub fn new(settings: OidcSettings) -> AccessTokens {
        AccessTokens {
            settings,
            keys: RwLock::new(None),
            stale: Notify::new(),
        }
    }

    /// The principal a valid access token stands for. `now_ms` is the server's clock.
    pub fn verify(&self, token: &str, now_ms: i64) -> Result<Principal, AccessTokenError> {
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(AccessTokenError::Malformed);
        };
        let header = part(h)?;
        let alg_name = header["alg"].as_str().unwrap_or("none");
        if alg_name == "none" || alg_name.starts_with("HS") {
            return Err(AccessTokenError::Algorithm(alg_name.to_string()));
        }
        let alg: CoreJwsSigningAlgorithm = serde_json::from_value(header["alg"].clone())
            .map_err(|_| AccessTokenError::Algorithm(alg_name.chars().take(16).collect()))?;
        let keys = self.keys.read().clone().ok_or_else(|| {
            self.stale.notify_one();
            AccessTokenError::NoKeys
        })?;
        let kid = header["kid"].as_str();
        let key: &CoreJsonWebKey = keys
            .keys()
            .iter()
            .find(|k| match kid {
                Some(kid) => k.key_id().is_some_and(|id| id.as_str() == kid),
                None => true,
            })
            .ok_or_else(|| {
                self.stale.notify_one();
                AccessTokenError::UnknownKey
            })?;
        let signature = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(s)
            .map_err(|_| AccessTokenError::Malformed)?;
        key.verify_signature(&alg, format!("{h}.{p}").as_bytes(), &signature)
            .map_err(|_| AccessTokenError::Signature)?;
        let claims = part(p)?;
        if claims["iss"].as_str() != Some(self.issuer().as_str()) {
            return Err(AccessTokenError::Issuer);
        }
        let audience = &self.settings.client_id;
        let for_us = match &claims["aud"] {
            Value::String(a) => a == audience,
            Value::Array(list) => list.iter().any(|a| a.as_str() == Some(audience)),
            _ => false,
        };
        if !for_us {
            return Err(AccessTokenError::Audience);
        }
        let now = now_ms / 1000;
        let exp = claims["exp"].as_i64().ok_or(AccessTokenError::Expired)?;
        let nbf = claims["nbf"].as_i64().unwrap_or(i64::MIN);
        if now > exp + LEEWAY_S || now + LEEWAY_S < nbf {
            return Err(AccessTokenError::Expired);
        }
        let groups = groups_in(&claims, &self.settings.groups_claim);
        let role = role_of(&self.settings.groups, &groups).ok_or(AccessTokenError::NoRole)?;
        let subject = claims["sub"]
            .as_str()
            .or(claims["client_id"].as_str())
            .unwrap_or("unknown");
        let display = claims["name"]
            .as_str()
            .or(claims["preferred_username"].as_str());
        let name = person_name(display, subject);
        Ok(Principal { name, role })
    }

    fn issuer(&self) -> String {
        self.settings.issuer.clone()
    }

    /// Keeps the issuer's keys loaded: at start, every 10 minutes, and soon after a token
    /// names a key not in the set (a rotation).
    pub async fn keep_keys(self: Arc<Self>, http: reqwest::Client, shutdown: CancellationToken) {
        loop {
            let wait = match self.load(&http).await {
                Ok(n) => {
                    info!(keys = n, "identity provider signing keys loaded");
                    REFRESH
                }
                Err(e) => {
                    warn!(error = %e, "cannot read the identity provider's signing keys; JWT access tokens are refused until they are read");
                    RETRY
                }
            };
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
                _ = self.stale.notified() => tokio::time::sleep(RETRY).await,
            }
        }
    }

    async fn load(&self, http: &reqwest::Client) -> Result<usize, String> {
        let issuer = IssuerUrl::new(self.issuer()).map_err(|e| e.to_string())?;
        let metadata = openidconnect::core::CoreProviderMetadata::discover_async(issuer, http)
            .await
            .map_err(|e| e.to_string())?;
        let keys = metadata.jwks().clone();
        let n = keys.keys().len();
        *self.keys.write() = Some(Arc::new(keys));
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Role;

    fn verifier() -> AccessTokens {
        AccessTokens::new(OidcSettings {
            issuer: "https://sso.example.org".into(),
            client_id: "vigil".into(),
            client_secret: None,
            groups_claim: "groups".into(),
            groups: vec![("nurses".into(), Role::CareTeam("ward".into()))],
            redirect_url: None,
        })
    }

    fn b64(v: &Value) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    }

    #[test]
    fn unsigned_and_symmetric_tokens_are_refused_before_anything_else() {
        let v = verifier();
        let claims = b64(&serde_json::json!({"iss": "https://sso.example.org", "aud": "vigil"}));
        for alg in ["none", "HS256"] {
            let token = format!("{}.{claims}.", b64(&serde_json::json!({"alg": alg})));
            assert_eq!(
                v.verify(&token, 0),
                Err(AccessTokenError::Algorithm(alg.into()))
            );
        }
        let rs = format!(
            "{}.{claims}.c2ln",
            b64(&serde_json::json!({"alg": "RS256"}))
        );
        assert_eq!(
            v.verify(&rs, 0),
            Err(AccessTokenError::NoKeys),
            "fail closed"
        );
        assert_eq!(v.verify("a.b", 0), Err(AccessTokenError::Malformed));
        assert!(looks_like_jwt(&rs) && !looks_like_jwt("vigil_abc"));
    }
}
