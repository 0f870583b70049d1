//! gRPC connections of Vigil's own tools (`rules`, `alerts tail`): the endpoint and the
//! bearer token (`--token` or `VIGIL_TOKEN`) sent with every call.

use anyhow::Context;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::service::Interceptor;
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Status};

/// A channel that adds `authorization: Bearer <token>` when a token is set.
pub type AuthedChannel = InterceptedService<Channel, BearerToken>;

#[derive(Clone)]
pub struct BearerToken(Option<MetadataValue<Ascii>>);

impl Interceptor for BearerToken {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(value) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}

/// `host:port` or a full URL.
pub fn endpoint(addr: &str) -> String {
    if addr.contains("://") {
        addr.to_string()
    } else {
        format!("http://{addr}")
    }
}

/// The bearer header for `token`.
pub fn bearer(token: Option<&str>) -> anyhow::Result<BearerToken> {
    token
        .map(|t| format!("Bearer {}", t.trim()).parse())
        .transpose()
        .map(BearerToken)
        .context("the token contains characters that cannot go in a header")
}

/// Connects to `addr` with `token`.
pub async fn connect(addr: &str, token: Option<&str>) -> anyhow::Result<AuthedChannel> {
    let url = endpoint(addr);
    let channel = Endpoint::from_shared(url.clone())
        .with_context(|| format!("'{url}' is not a valid address"))?
        .connect()
        .await
        .with_context(|| format!("cannot connect to {url}"))?;
    Ok(InterceptedService::new(channel, bearer(token)?))
}
