//! gRPC connections of Vigil's own tools (`rules`, `alerts tail`): the endpoint, TLS
//! (`--ca-cert` or `VIGIL_CA_CERT`), and the bearer token (`--token` or `VIGIL_TOKEN`) sent
//! with every call.

use anyhow::{bail, Context};
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::service::Interceptor;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};
use tonic::{Request, Status};

use crate::cli::GrpcTarget;

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

/// The URL for `target`: `host:port` becomes `https://` with a CA certificate, else
/// `http://`; a full URL is kept.
pub fn endpoint(target: &GrpcTarget) -> String {
    let addr = &target.grpc;
    if addr.contains("://") {
        addr.to_string()
    } else if target.ca_cert.is_some() {
        format!("https://{addr}")
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

/// Connects to `target`, verifying a TLS server against `--ca-cert`.
pub async fn connect(target: &GrpcTarget) -> anyhow::Result<AuthedChannel> {
    let url = endpoint(target);
    let mut endpoint = Endpoint::from_shared(url.clone())
        .with_context(|| format!("'{url}' is not a valid address"))?;
    match &target.ca_cert {
        Some(path) => {
            let pem = std::fs::read(path)
                .with_context(|| format!("cannot read --ca-cert {}", path.display()))?;
            let mut tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(pem));
            if let Some(name) = &target.tls_server_name {
                tls = tls.domain_name(name.clone());
            }
            endpoint = endpoint
                .tls_config(tls)
                .with_context(|| format!("TLS settings for {url}"))?;
        }
        None if url.starts_with("https://") => {
            bail!("{url} uses TLS: give the CA certificate that signed the server's with --ca-cert")
        }
        None => {}
    }
    let channel = endpoint
        .connect()
        .await
        .with_context(|| format!("cannot connect to {url}"))?;
    Ok(InterceptedService::new(
        channel,
        bearer(target.token.as_deref())?,
    ))
}
