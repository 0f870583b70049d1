//! TLS for the MQTT, gRPC and HTTP listeners (rustls with the ring provider): the server's
//! certificate chain and key from `[tls]`, and optionally the CA whose client certificates
//! authenticate MQTT devices (the certificate's Common Name is the device id).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use thiserror::Error;

/// The `[tls]` files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM: the server certificate first, then any intermediates.
    pub cert: PathBuf,
    /// PEM: the private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// PEM: CA certificates that sign device certificates (MQTT client-certificate auth).
    pub client_ca: Option<PathBuf>,
}

#[derive(Debug, Error)]
pub enum TlsError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} holds no PEM certificate (expected -----BEGIN CERTIFICATE-----)")]
    NoCertificate { path: PathBuf },
    #[error("{path} holds no PEM private key (PKCS#8, PKCS#1 or SEC1)")]
    NoKey { path: PathBuf },
    #[error("certificate {cert} and key {key} are not a usable pair: {source}")]
    Identity {
        cert: PathBuf,
        key: PathBuf,
        source: rustls::Error,
    },
    #[error("client CA {path}: {reason}")]
    ClientCa { path: PathBuf, reason: String },
}

/// What the listeners need, built once at start.
pub struct Tls {
    /// MQTT: verifies client certificates against `client_ca` when it is set (a client
    /// without a certificate may still log in with a device secret).
    pub mqtt: Arc<ServerConfig>,
    /// gRPC: the same certificate and key.
    pub grpc: tonic::transport::ServerTlsConfig,
    /// HTTP (the console): the same certificate, no client certificates.
    pub http: Arc<ServerConfig>,
    pub client_certificates: bool,
}

/// Loads and checks the files: a missing file, a file without PEM blocks, or a key that does
/// not match the certificate is an error that names the file.
pub fn load(files: &TlsFiles) -> Result<Tls, TlsError> {
    let cert_pem = read(&files.cert)?;
    let key_pem = read(&files.key)?;
    let chain = certificates(&cert_pem, &files.cert)?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|_| TlsError::NoKey {
        path: files.key.clone(),
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let identity_error = |source| TlsError::Identity {
        cert: files.cert.clone(),
        key: files.key.clone(),
        source,
    };
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(identity_error)?;
    let builder = match &files.client_ca {
        None => builder.with_no_client_auth(),
        Some(path) => {
            let ca_error = |reason: String| TlsError::ClientCa {
                path: path.clone(),
                reason,
            };
            let mut roots = RootCertStore::empty();
            for ca in certificates(&read(path)?, path)? {
                roots.add(ca).map_err(|e| ca_error(e.to_string()))?;
            }
            let verifier =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                    .allow_unauthenticated()
                    .build()
                    .map_err(|e| ca_error(e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mqtt = builder
        .with_single_cert(chain.clone(), key.clone_key())
        .map_err(identity_error)?;
    // The console asks browsers for no certificate.
    let mut http = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(identity_error)?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(identity_error)?;
    http.alpn_protocols = vec![b"http/1.1".to_vec()];
    let grpc = tonic::transport::ServerTlsConfig::new()
        .identity(tonic::transport::Identity::from_pem(cert_pem, key_pem));
    Ok(Tls {
        mqtt: Arc::new(mqtt),
        grpc,
        http: Arc::new(http),
        client_certificates: files.client_ca.is_some(),
    })
}

/// The Common Name of a certificate's subject, if it has one.
/// The TLS client configuration for Vigil's outgoing HTTPS (notifier receivers, the
/// identity provider): the system's trusted roots (hospitals install their own CA there),
/// rustls with the ring provider as for every other TLS in Vigil.
pub fn native_roots_client() -> Result<rustls::ClientConfig, rustls::Error> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    Ok(
        rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth(),
    )
}

pub fn common_name(cert: &CertificateDer<'_>) -> Option<String> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    let cn = parsed.subject().iter_common_name().next()?;
    cn.as_str().ok().map(str::to_string)
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_path_buf(),
        source,
    })
}

fn certificates(pem: &[u8], path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs: Vec<_> = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<_, _>>()
        .map_err(|_| TlsError::NoCertificate {
            path: path.to_path_buf(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_path_buf(),
        });
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    fn self_signed(cn: &str) -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["localhost".into()]).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        let cert = params.self_signed(&key).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    #[test]
    fn loads_a_pair_and_reads_the_common_name() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = self_signed("cuff-7");
        let files = TlsFiles {
            cert: write(dir.path(), "c.pem", &cert),
            key: write(dir.path(), "k.pem", &key),
            client_ca: Some(write(dir.path(), "ca.pem", &cert)),
        };
        let tls = load(&files).unwrap();
        assert!(tls.client_certificates);
        let der = CertificateDer::from_pem_slice(cert.as_bytes()).unwrap();
        assert_eq!(common_name(&der).as_deref(), Some("cuff-7"));
    }

    #[test]
    fn errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = self_signed("server");
        let (_, other_key) = self_signed("other");
        let cert_path = write(dir.path(), "c.pem", &cert);
        let missing = TlsFiles {
            cert: dir.path().join("nope.pem"),
            key: write(dir.path(), "k.pem", &key),
            client_ca: None,
        };
        let e = load(&missing).err().unwrap().to_string();
        assert!(
            e.starts_with("cannot read ") && e.contains("nope.pem"),
            "{e}"
        );
        let key_as_cert = TlsFiles {
            cert: write(dir.path(), "kc.pem", &key),
            ..missing.clone()
        };
        let e = load(&key_as_cert).err().unwrap().to_string();
        assert!(e.contains("kc.pem holds no PEM certificate"), "{e}");
        let cert_as_key = TlsFiles {
            cert: cert_path.clone(),
            key: cert_path.clone(),
            client_ca: None,
        };
        let e = load(&cert_as_key).err().unwrap().to_string();
        assert!(e.contains("c.pem holds no PEM private key"), "{e}");
        let mismatched = TlsFiles {
            cert: cert_path,
            key: write(dir.path(), "other.pem", &other_key),
            client_ca: None,
        };
        let e = load(&mismatched).err().unwrap().to_string();
        assert!(e.contains("are not a usable pair"), "{e}");
    }
}
