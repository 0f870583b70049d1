//! The gRPC side of authentication: an interceptor per service that checks the bearer
//! token and its role, and leaves the caller in the request for scoping (care team,
//! gateway prefixes, audit actor).

use std::sync::Arc;

use tonic::service::Interceptor;
use tonic::{Request, Status};

use crate::app::Caller;
use crate::auth::role::Service;
use crate::auth::{Auth, Principal, Refusal};

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
        let presented = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(crate::auth::token::bearer);
        let principal = self
            .auth
            .authenticate(presented, self.service, request.remote_addr())
            .map_err(|refusal| match refusal {
                Refusal::Unauthenticated(why) => Status::unauthenticated(why),
                Refusal::Forbidden(why) => Status::permission_denied(why),
            })?;
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
