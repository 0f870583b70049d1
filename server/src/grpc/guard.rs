//! The gRPC side of authentication: an interceptor per service that checks the bearer
//! token and its role, and leaves the caller in the request for scoping (care team,
//! gateway prefixes, audit actor).

use std::sync::Arc;

use tonic::service::Interceptor;
use tonic::{Request, Status};

use crate::app::Caller;
use crate::auth::access_token::looks_like_jwt;
use crate::auth::role::Service;
use crate::auth::{Auth, AuthFailure, Principal};

/// The authenticated principal, in a request's extensions (absent when auth is off).
#[derive(Debug, Clone)]
pub struct Authenticated(pub Arc<Principal>);

/// Checks every call to one service.
#[derive(Clone)]
pub struct Guard {
    auth: Arc<Auth>,
    service: Service,
}

impl Guard {
    pub fn new(auth: Arc<Auth>, service: Service) -> Guard {
        Guard { auth, service }
    }
}

impl Interceptor for Guard {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if !self.auth.enabled {
            return Ok(request);
        }
        let peer = request
            .remote_addr()
            .map_or_else(|| "unknown peer".to_string(), |a| a.to_string());
        // Repeats are grouped by address, whatever port each attempt came from.
        let source = request
            .remote_addr()
            .map_or_else(|| "unknown peer".to_string(), |a| a.ip().to_string());
        let service = self.service.name();
        let presented = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(crate::auth::token::bearer);
        let Some(token) = presented else {
            self.auth
                .failures
                .record(AuthFailure::MissingToken, &source, &peer, service);
            return Err(Status::unauthenticated(
                "this server requires a bearer token: send metadata `authorization: Bearer <token>` \
                 (an operator creates one with `vigil token create`)",
            ));
        };
        let token = token.trim();
        let principal = match (self.auth.token(token), &self.auth.access_tokens) {
            (Some(p), _) => p,
            (None, Some(jwt)) if looks_like_jwt(token) => {
                match jwt.verify(token, crate::clock::now_ms()) {
                    Ok(p) => Arc::new(p),
                    Err(why) => {
                        self.auth
                            .failures
                            .record(AuthFailure::BadToken, &source, &peer, service);
                        return Err(Status::unauthenticated(format!(
                            "the identity provider's access token is refused: {why}"
                        )));
                    }
                }
            }
            (None, _) => {
                self.auth
                    .failures
                    .record(AuthFailure::BadToken, &source, &peer, service);
                return Err(Status::unauthenticated(
                    "the bearer token is not valid on this server (revoked, mistyped, or from \
                     another installation)",
                ));
            }
        };
        if !principal.role.may_call(self.service) {
            self.auth.failures.record(
                AuthFailure::WrongRole,
                &principal.name,
                &principal.name,
                service,
            );
            return Err(Status::permission_denied(format!(
                "token '{}' has role {}, which may call {} only, not {service}",
                principal.name,
                principal.role,
                principal.role.services()
            )));
        }
        request.extensions_mut().insert(Authenticated(principal));
        Ok(request)
    }
}

/// Who sent `request`: its authenticated principal (none with authentication off) and
/// its address.
pub fn caller<T>(request: &Request<T>) -> Caller {
    Caller {
        principal: request
            .extensions()
            .get::<Authenticated>()
            .map(|a| a.0.clone()),
        peer: request.remote_addr(),
    }
}
