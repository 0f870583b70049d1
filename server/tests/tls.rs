//! TLS against the real server with real clients: rumqttc over rustls with and without
//! client certificates, a tonic client and the `vigil` CLI over TLS, and every way a
//! handshake or certificate is refused. The test CA is generated here (rcgen), per run.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tonic::transport::{Certificate, Channel, ClientTlsConfig};
use vigil_proto::v1;
use vigil_proto::v1::rules_client::RulesClient;

/// A certificate authority that signs the server's and the devices' certificates.
struct TestCa {
    pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl TestCa {
    fn new(name: &str) -> TestCa {
        let mut params = CertificateParams::new(Vec::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().unwrap();
        let pem = params.self_signed(&key).unwrap().pem();
        TestCa {
            pem,
            issuer: Issuer::new(params, key),
        }
    }

    /// (certificate PEM, key PEM) for `cn`, valid for `names` as a server or as a client.
    fn sign(&self, cn: &str, names: &[&str], usage: ExtendedKeyUsagePurpose) -> (String, String) {
        let mut params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.extended_key_usages = vec![usage];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// A rustls client trusting `ca`, presenting `identity` if given.
fn client_config(ca: &str, identity: Option<&(String, String)>) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots);
    Arc::new(match identity {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => builder
            .with_client_auth_cert(
                vec![CertificateDer::from_pem_slice(cert.as_bytes()).unwrap()],
                PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap(),
            )
            .unwrap(),
    })
}

/// Connects over TLS; `Err` carries why the connection was refused.
async fn mqtt_tls(
    server: &Server,
    client_id: &str,
    tls: Arc<rustls::ClientConfig>,
    login: Option<(&str, &str)>,
) -> Result<Device, String> {
    let mut options = rumqttc::MqttOptions::new(client_id, "127.0.0.1", server.mqtt.port());
    options.set_keep_alive(Duration::from_secs(30));
    options.set_transport(rumqttc::Transport::tls_with_config(
        rumqttc::TlsConfiguration::Rustls(tls),
    ));
    if let Some((user, password)) = login {
        options.set_credentials(user, password);
    }
    connack(options).await
}

#[tokio::test]
async fn devices_and_clients_speak_tls_and_certificates_name_devices() {
    let certs = tempfile::tempdir().unwrap();
    let ca = TestCa::new("Vigil test CA");
    let server_identity = ca.sign(
        "vigil.test",
        &["localhost", "127.0.0.1"],
        ExtendedKeyUsagePurpose::ServerAuth,
    );
    let patch = ca.sign("patch-1", &[], ExtendedKeyUsagePurpose::ClientAuth);
    let unprovisioned = ca.sign("cuff-9", &[], ExtendedKeyUsagePurpose::ClientAuth);
    let rogue = TestCa::new("Rogue CA").sign("patch-1", &[], ExtendedKeyUsagePurpose::ClientAuth);
    let ca_path = write(certs.path(), "ca.pem", &ca.pem);
    let cert_path = write(certs.path(), "server.pem", &server_identity.0);
    let key_path = write(certs.path(), "server.key", &server_identity.1);

    let cuff_entry = device_add("cuff-1", "p-2", "cuff-one-secret-123").await;
    let (admin, admin_entry) = token_create("ops", "admin", &[]).await;
    let config = format!(
        "[auth]\nenabled = true\n\n[tls]\ncert = {cert:?}\nkey = {key:?}\nclient_ca = {ca:?}\n\n\
         # Certificate only: no secret_hash.\n[[devices]]\nid = \"patch-1\"\npatient = \"p-1\"\n\n\
         {cuff_entry}\n{admin_entry}\n",
        cert = cert_path.display().to_string(),
        key = key_path.display().to_string(),
        ca = ca_path.display().to_string(),
    );
    let server = Server::start(Some(&config));

    // A device certificate from the CA: logged in as the device its Common Name names,
    // without a password, and still confined to its own patient.
    let mut patch_device = mqtt_tls(
        &server,
        "patch-1",
        client_config(&ca.pem, Some(&patch)),
        None,
    )
    .await
    .expect("certificate login");
    patch_device.publish("vitals/p-1/spo2", "97").await;
    patch_device.publish("vitals/p-2/spo2", "97").await;
    // A password device over TLS, without a certificate.
    let mut cuff = mqtt_tls(
        &server,
        "cuff-1",
        client_config(&ca.pem, None),
        Some(("cuff-1", "cuff-one-secret-123")),
    )
    .await
    .expect("password login over TLS");
    cuff.publish("vitals/p-2/heart_rate", "72").await;
    assert_eq!(
        server
            .wait_metric("vigil_readings_ingested_total{source=\"mqtt\"}", 2.0)
            .await,
        2.0,
        "p-1 from the certificate device, p-2 from the password device, not p-2 from the patch"
    );
    assert_eq!(
        server
            .metric("vigil_auth_failures_total{reason=\"publish_denied\"}")
            .await,
        1.0
    );

    // Refused: a certificate from another CA (handshake), a certificate naming a device
    // nobody provisioned, a certificate with another device's username, and a plain-TCP
    // client on the TLS port.
    let refused = mqtt_tls(&server, "rogue", client_config(&ca.pem, Some(&rogue)), None)
        .await
        .err()
        .expect("a rogue CA's certificate is refused");
    assert!(
        refused.contains("Tls") || refused.contains("Io"),
        "{refused}"
    );
    for (client_id, identity, login) in [
        ("cuff-9", &unprovisioned, None),
        ("patch-1", &patch, Some(("cuff-1", "cuff-one-secret-123"))),
    ] {
        let refused = mqtt_tls(
            &server,
            client_id,
            client_config(&ca.pem, Some(identity)),
            login,
        )
        .await
        .err()
        .expect("refused");
        assert!(refused.contains("NotAuthorized"), "{refused}");
    }
    let mut options = rumqttc::MqttOptions::new("plain", "127.0.0.1", server.mqtt.port());
    options.set_keep_alive(Duration::from_secs(5));
    let (_plain_client, mut plain) = rumqttc::AsyncClient::new(options, 8);
    let plain_result = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match plain.poll().await {
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(_))) => return Ok(()),
                Ok(_) => {}
                Err(e) => return Err(e),
            }
        }
    })
    .await
    .expect("the TLS port answers a plain client within 10 s");
    assert!(plain_result.is_err(), "a plain-TCP client was served");
    assert_eq!(
        server
            .wait_metric("vigil_auth_failures_total{reason=\"bad_certificate\"}", 3.0)
            .await,
        3.0,
        "rogue CA, unprovisioned device, username mismatch"
    );
    assert!(
        server
            .metric("vigil_mqtt_tls_handshake_failures_total")
            .await
            >= 2.0,
        "the rogue certificate and the plain client"
    );
    // The refusals cost the connected devices nothing.
    cuff.publish("vitals/p-2/heart_rate", "73").await;
    assert_eq!(
        server
            .wait_metric("vigil_readings_ingested_total{source=\"mqtt\"}", 3.0)
            .await,
        3.0
    );

    // gRPC over TLS with the server certificate checked against the CA.
    let channel = Channel::from_shared(format!("https://localhost:{}", server.grpc.port()))
        .unwrap()
        .tls_config(
            ClientTlsConfig::new()
                .ca_certificate(Certificate::from_pem(&ca.pem))
                .domain_name("localhost"),
        )
        .unwrap()
        .connect()
        .await
        .expect("TLS channel");
    let header: tonic::metadata::MetadataValue<_> = format!("Bearer {admin}").parse().unwrap();
    let mut rules = RulesClient::with_interceptor(channel, move |mut req: tonic::Request<()>| {
        req.metadata_mut().insert("authorization", header.clone());
        Ok(req)
    });
    let listed = rules
        .list_rules(v1::ListRulesRequest {})
        .await
        .expect("ListRules over TLS")
        .into_inner();
    assert!(!listed.rules.is_empty());
    // Plain HTTP/2 to the TLS port fails.
    let plain = Channel::from_shared(server.grpc_url())
        .unwrap()
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await;
    if let Ok(plain) = plain {
        let answer = RulesClient::new(plain)
            .list_rules(v1::ListRulesRequest {})
            .await;
        assert!(answer.is_err(), "plaintext gRPC was served on the TLS port");
    }
    // The CLI: --ca-cert turns TLS on (the server's certificate names 127.0.0.1 too).
    let grpc = server.grpc.to_string();
    let ca_arg = ca_path.to_str().unwrap();
    let out = run_cli(&[
        "rules",
        "list",
        "--grpc",
        &grpc,
        "--ca-cert",
        ca_arg,
        "--token",
        &admin,
        "--json",
    ])
    .await;
    assert!(String::from_utf8(out.stdout).unwrap().contains("\"id\""));
    let without_ca = std::process::Command::new(VIGIL)
        .args(["rules", "list", "--grpc", &grpc, "--token", &admin])
        .output()
        .unwrap();
    assert!(!without_ca.status.success());

    // Nothing secret or patient-identifying in the log of the refusals.
    let stderr = server.stderr();
    assert!(!stderr.contains("cuff-one-secret-123"));
    assert!(!stderr.contains("PRIVATE KEY"));
}

#[tokio::test]
async fn a_bad_certificate_file_stops_the_start_with_its_name() {
    let certs = tempfile::tempdir().unwrap();
    let ca = TestCa::new("Vigil test CA");
    let (cert, _) = ca.sign(
        "vigil.test",
        &["localhost"],
        ExtendedKeyUsagePurpose::ServerAuth,
    );
    let cert_path = write(certs.path(), "server.pem", &cert);
    // The certificate where the key should be.
    let config = format!(
        "[tls]\ncert = {c:?}\nkey = {c:?}\n",
        c = cert_path.display().to_string()
    );
    let dir = tempfile::tempdir().unwrap();
    let config_path = write(dir.path(), "vigil.toml", &config);
    let out = std::process::Command::new(VIGIL)
        .args(["serve", "--config"])
        .arg(&config_path)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args(LOOPBACK_PORTS)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("[tls]") && stderr.contains("server.pem holds no PEM private key"),
        "{stderr}"
    );
}

/// OpenSSL's TLS stack as a second real client: stock `mosquitto_pub` with a device
/// certificate, and without one (no password: refused).
#[tokio::test]
async fn stock_mosquitto_pub_logs_in_with_a_device_certificate() {
    if !mosquitto_pub_available() {
        return;
    }
    let certs = tempfile::tempdir().unwrap();
    let ca = TestCa::new("Vigil test CA");
    let (cert, key) = ca.sign(
        "vigil.test",
        &["localhost"],
        ExtendedKeyUsagePurpose::ServerAuth,
    );
    let (device_cert, device_key) = ca.sign("patch-17", &[], ExtendedKeyUsagePurpose::ClientAuth);
    let path = |name: &str, text: &str| write(certs.path(), name, text).display().to_string();
    let (ca_file, cert_file, key_file) = (
        path("ca.pem", &ca.pem),
        path("server.pem", &cert),
        path("server.key", &key),
    );
    let (device_cert, device_key) = (
        path("patch.pem", &device_cert),
        path("patch.key", &device_key),
    );
    let server = Server::start(Some(&format!(
        "[auth]\nenabled = true\n\n[tls]\ncert = {cert_file:?}\nkey = {key_file:?}\n\
         client_ca = {ca_file:?}\n\n[[devices]]\nid = \"patch-17\"\npatient = \"p-017\"\n"
    )));
    let port = server.mqtt.port().to_string();
    let publish = |with_certificate: bool| {
        let mut cmd = std::process::Command::new("mosquitto_pub");
        cmd.args(["-h", "localhost", "-p", &port, "-V", "mqttv311", "-q", "1"])
            .args(["--cafile", &ca_file, "-i", "patch-17"])
            .args(["-t", "vitals/p-017/spo2", "-m", "97"]);
        if with_certificate {
            cmd.args(["--cert", &device_cert, "--key", &device_key]);
        }
        cmd.output().unwrap()
    };
    let out = publish(true);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !publish(false).status.success(),
        "no certificate, no password"
    );
    assert_eq!(
        server
            .wait_metric("vigil_readings_ingested_total{source=\"mqtt\"}", 1.0)
            .await,
        1.0
    );
    assert_eq!(
        server
            .wait_metric(
                "vigil_auth_failures_total{reason=\"missing_credentials\"}",
                1.0
            )
            .await,
        1.0
    );
}

/// One HTTP/1.1 request over TLS; the whole response as text.
async fn https(server: &Server, config: Arc<rustls::ClientConfig>, request: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let tcp = tokio::net::TcpStream::connect(server.http).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .expect("TLS handshake with the console");
    tls.write_all(request.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), tls.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn the_console_speaks_tls_and_its_session_cookie_is_secure() {
    let certs = tempfile::tempdir().unwrap();
    let ca = TestCa::new("Vigil test CA");
    let identity = ca.sign(
        "vigil.test",
        &["localhost"],
        ExtendedKeyUsagePurpose::ServerAuth,
    );
    let cert_path = write(certs.path(), "server.pem", &identity.0);
    let key_path = write(certs.path(), "server.key", &identity.1);
    let (nurse, nurse_entry) = token_create("nurse", "care_team:default", &[]).await;
    let config = format!(
        "[auth]\nenabled = true\n\n[tls]\ncert = {cert:?}\nkey = {key:?}\n\n{nurse_entry}\n",
        cert = cert_path.display().to_string(),
        key = key_path.display().to_string(),
    );
    let server = Server::start(Some(&config));
    let client = client_config(&ca.pem, None);
    let health = https(
        &server,
        client.clone(),
        "GET /readyz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    let body = format!(r#"{{"token":"{nurse}"}}"#);
    let signed_in = https(
        &server,
        client,
        &format!(
            "POST /api/session HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
    )
    .await;
    assert!(signed_in.starts_with("HTTP/1.1 200"), "{signed_in}");
    let cookie = signed_in
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
        .unwrap();
    assert!(
        cookie.contains("; Secure")
            && cookie.contains("HttpOnly")
            && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    // Plain HTTP to the TLS listener gets no answer.
    let plain = tokio::time::timeout(Duration::from_secs(15), async {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut tcp = tokio::net::TcpStream::connect(server.http).await.unwrap();
        let _ = tcp
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .await;
        let mut out = Vec::new();
        let _ = tcp.read_to_end(&mut out).await;
        out
    })
    .await
    .unwrap_or_default();
    assert!(!String::from_utf8_lossy(&plain).contains("200 OK"));
}
