//! Staff sign-in through the hospital's OpenID Connect provider: the authorization code
//! flow with PKCE, a nonce and a state bound to the browser. The ID token is verified by
//! `openidconnect` (signature against the issuer's JWKS, issuer, audience, expiry against
//! the server's clock, nonce); the person's groups, read from the verified token, map to a
//! role. A person in no mapped group is refused: sign-in fails closed.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use base64::Engine as _;
use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreProviderMetadata};
use openidconnect::{
    AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, Nonce, PkceCodeChallenge,
    PkceCodeVerifier, RedirectUrl, Scope, TokenResponse,
};
use parking_lot::Mutex;
use tokio::sync::OnceCell;

use super::{Principal, Role};

/// `[auth.oidc]`, checked.
#[derive(Debug, Clone)]
pub struct OidcSettings {
    pub issuer: String,
    pub client_id: String,
    pub client_secret: Option<String>,
    pub groups_claim: String,
    /// Group → role, in the group names' order: the first group of the person's that is
    /// listed gives the role.
    pub groups: Vec<(String, Role)>,
    pub redirect_url: Option<String>,
}

/// How long a sign-in may take between leaving for the provider and coming back.
pub const PENDING_FOR: Duration = Duration::from_secs(600);
/// Sign-ins under way at once; beyond, the oldest are forgotten.
pub const MAX_PENDING: usize = 10_000;

#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    #[error("the identity provider could not be reached or read ({0}); retry, or tell the administrator")]
    Provider(String),
    #[error("this sign-in is unknown or older than 10 minutes: start again")]
    UnknownState,
    #[error("the identity provider's answer was refused ({0})")]
    Refused(String),
    #[error("your account is in no group that this Vigil gives a role to: ask the administrator")]
    NoRole,
}

struct Pending {
    verifier: String,
    nonce: String,
    at: Instant,
}

/// A person, as the provider vouches for them.
#[derive(Debug, Clone, PartialEq)]
pub struct Person {
    pub subject: String,
    pub name: String,
    pub groups: Vec<String>,
}

pub struct Oidc {
    settings: OidcSettings,
    redirect: String,
    http: reqwest::Client,
    metadata: OnceCell<CoreProviderMetadata>,
    pending: Mutex<HashMap<String, Pending>>,
}

impl Oidc {
    /// `redirect`: where the provider sends the browser back (`/auth/callback`).
    pub fn new(settings: OidcSettings, redirect: String) -> anyhow::Result<Oidc> {
        let redirect = settings.redirect_url.clone().unwrap_or(redirect);
        Ok(Oidc {
            settings,
            redirect,
            http: http_client()?,
            metadata: OnceCell::new(),
            pending: Mutex::new(HashMap::new()),
        })
    }

    /// The provider's metadata, discovered once (not at start: a provider that is down
    /// then must not keep Vigil from starting).
    async fn metadata(&self) -> Result<&CoreProviderMetadata, OidcError> {
        self.metadata
            .get_or_try_init(|| async {
                let issuer = IssuerUrl::new(self.settings.issuer.clone())
                    .map_err(|e| OidcError::Provider(e.to_string()))?;
                CoreProviderMetadata::discover_async(issuer, &self.http)
                    .await
                    .map_err(|e| OidcError::Provider(e.to_string()))
            })
            .await
    }

    fn client(&self, metadata: &CoreProviderMetadata) -> Result<OidcClient, OidcError> {
        let redirect = RedirectUrl::new(self.redirect.clone())
            .map_err(|e| OidcError::Provider(e.to_string()))?;
        Ok(CoreClient::from_provider_metadata(
            metadata.clone(),
            ClientId::new(self.settings.client_id.clone()),
            self.settings.client_secret.clone().map(ClientSecret::new),
        )
        .set_redirect_uri(redirect))
    }

    /// Starts a sign-in: the provider's URL to send the browser to, and the state the
    /// callback must bring back (also set in a cookie, binding it to this browser).
    pub async fn begin(&self) -> Result<(String, String), OidcError> {
        let client = self.client(self.metadata().await?)?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let (url, state, nonce) = client
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                CsrfToken::new_random,
                Nonce::new_random,
            )
            .add_scope(Scope::new("profile".into()))
            .set_pkce_challenge(challenge)
            .url();
        let now = Instant::now();
        let mut pending = self.pending.lock();
        pending.retain(|_, p| now.duration_since(p.at) < PENDING_FOR);
        if pending.len() >= MAX_PENDING {
            if let Some(oldest) = pending
                .iter()
                .min_by_key(|(_, p)| p.at)
                .map(|(k, _)| k.clone())
            {
                pending.remove(&oldest);
            }
        }
        pending.insert(
            state.secret().clone(),
            Pending {
                verifier: verifier.secret().clone(),
                nonce: nonce.secret().clone(),
                at: now,
            },
        );
        Ok((url.to_string(), state.secret().clone()))
    }

    /// Finishes a sign-in: exchanges the code, verifies the ID token, and returns the
    /// person with the role their groups give.
    pub async fn finish(&self, state: &str, code: &str) -> Result<(Person, Role), OidcError> {
        let pending = self
            .pending
            .lock()
            .remove(state)
            .filter(|p| p.at.elapsed() < PENDING_FOR)
            .ok_or(OidcError::UnknownState)?;
        let client = self.client(self.metadata().await?)?;
        let tokens = client
            .exchange_code(AuthorizationCode::new(code.to_string()))
            .map_err(|e| OidcError::Provider(e.to_string()))?
            .set_pkce_verifier(PkceCodeVerifier::new(pending.verifier))
            .request_async(&self.http)
            .await
            .map_err(|e| OidcError::Refused(format!("code exchange: {e}")))?;
        let id_token = tokens
            .id_token()
            .ok_or_else(|| OidcError::Refused("no ID token".into()))?;
        let verifier = client.id_token_verifier().set_time_fn(|| {
            chrono::DateTime::from_timestamp_millis(crate::clock::now_ms()).unwrap_or_default()
        });
        let claims = id_token
            .claims(&verifier, &Nonce::new(pending.nonce))
            .map_err(|e| OidcError::Refused(format!("ID token: {e}")))?;
        let subject = claims.subject().as_str().to_string();
        // The token's signature is verified: its payload can be read for the groups claim,
        // which the standard claims do not carry.
        let payload = id_token
            .to_string()
            .split('.')
            .nth(1)
            .and_then(jwt_part)
            .unwrap_or_default();
        let groups = groups_in(&payload, &self.settings.groups_claim);
        let display = claims
            .name()
            .and_then(|n| n.get(None))
            .map(|n| n.as_str().to_string())
            .or_else(|| claims.preferred_username().map(|u| u.as_str().to_string()));
        let name = person_name(display.as_deref(), &subject);
        let person = Person {
            subject,
            name,
            groups,
        };
        let role = role_of(&self.settings.groups, &person.groups).ok_or(OidcError::NoRole)?;
        Ok((person, role))
    }

    /// The principal a signed-in person acts as.
    pub fn principal(person: &Person, role: Role) -> Principal {
        Principal {
            name: person.name.clone(),
            role,
        }
    }
}

/// The client Vigil talks to the provider with: rustls with the system's roots, no
/// redirects (a provider's answer must not send Vigil elsewhere), 10 s per request.
pub fn http_client() -> anyhow::Result<reqwest::Client> {
    let tls = crate::tls::native_roots_client()?;
    Ok(reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()?)
}

type OidcClient = openidconnect::core::CoreClient<
    openidconnect::EndpointSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointMaybeSet,
    openidconnect::EndpointMaybeSet,
>;

/// One base64url part of a JWT's compact form, as JSON (nothing is verified here).
pub fn jwt_part(part: &str) -> Option<serde_json::Value> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// The groups a verified token's `claim` lists (a list of names, or one name).
pub fn groups_in(claims: &serde_json::Value, claim: &str) -> Vec<String> {
    match &claims[claim] {
        serde_json::Value::Array(a) => a
            .iter()
            .filter_map(|g| g.as_str().map(str::to_string))
            .collect(),
        serde_json::Value::String(g) => vec![g.clone()],
        _ => Vec::new(),
    }
}

/// How a person signed in through the provider is named in events and the audit log:
/// `Display Name (subject)`, or the subject alone when there is no other name.
pub fn person_name(display: Option<&str>, subject: &str) -> String {
    match display {
        Some(d) if d != subject => format!("{d} ({subject})"),
        _ => subject.to_string(),
    }
}

/// The role of the first mapped group the person is in.
pub fn role_of(map: &[(String, Role)], groups: &[String]) -> Option<Role> {
    map.iter()
        .find(|(g, _)| groups.iter().any(|p| p == g))
        .map(|(_, r)| r.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_mapped_group_gives_the_role_and_none_refuses() {
        let map = vec![
            (
                "cardio-nurses".to_string(),
                Role::CareTeam("cardiology".into()),
            ),
            ("wall".to_string(), Role::Viewer("cardiology".into())),
        ];
        assert_eq!(
            role_of(&map, &["wall".into(), "cardio-nurses".into()]),
            Some(Role::CareTeam("cardiology".into()))
        );
        assert_eq!(role_of(&map, &["finance".into()]), None);
    }
}
