//! TLS origination by the mesh-owned connector against rustls backends with certificates made
//! here (rcgen): a mesh CA and SPIFFE workload certificates, an expired certificate, a wrong
//! SAN, a wrong CA; each mode and each failure with its outcome (Envoy's local reply and
//! transport failure reason); hostile servers (a stalled handshake, garbage instead of a
//! ServerHello); certificate rotation under load with no failed request.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;
use mesh_tests::pki::{server_config, workload_dir, Ca, Dir};
use mesh_tests::Backend;
use mesh_tower::client::MeshClient;

use crate::support::mesh::connector_mesh;
use crate::support::requests::{conn_get, fetch, local_reply};
use crate::support::upstream::CONN_TEST;
use crate::support::yaml::{
    conn_entry, conn_rule, no_retries, virtual_service, DestinationRule, ServiceEntry,
};

/// Envoy's transport failure reason for a certificate that does not verify.
const CERTIFICATE_VERIFY_FAILED: &str =
    "TLS_error:|268435581:SSL routines:OPENSSL_internal:CERTIFICATE_VERIFY_FAILED:TLS_error_end";

/// The backend's SPIFFE identity.
const SERVER_ID: &str = "spiffe://cluster.local/ns/default/sa/api";
/// The calling workload's SPIFFE identity.
const CLIENT_ID: &str = "spiffe://cluster.local/ns/default/sa/client";

#[tokio::test]
async fn istio_mutual_sends_the_mesh_identity_sni_and_alpn() {
    let ca = Ca::new("mesh");
    let server = ca.leaf(&[], &[SERVER_ID], false);
    let client = ca.leaf(&[], &[CLIENT_ID], false);
    let dir = workload_dir(&ca, &client);
    let backend = Backend::builder()
        .name("api")
        .tls(server_config(&server, Some(&ca)))
        .start()
        .await
        .unwrap();
    let (mesh, _h) = connector_mesh(
        &[
            &conn_entry("HTTP", &[backend.addr()]),
            &conn_rule("    tls: {mode: ISTIO_MUTUAL}\n"),
        ],
        MeshClient::builder().workload_certificates(dir.path()),
    );
    let (status, _, body) = fetch(&mesh, conn_get("/")).await.unwrap();
    assert_eq!((status, &body[..]), (StatusCode::OK, &b"api"[..]));
    let tls = backend.tls_connections();
    assert_eq!(tls.len(), 1);
    assert_eq!(tls[0].sni.as_deref(), Some("outbound_.80_._.api.conn.test"));
    assert_eq!(tls[0].offered_alpn, ["istio-http/1.1", "istio", "http/1.1"]);
    assert_eq!(tls[0].alpn.as_deref(), Some("http/1.1"));
    assert_eq!(
        tls[0].client_certificate.as_deref(),
        Some(client.der.as_ref())
    );
}

#[tokio::test]
async fn istio_mutual_http2_subset_offers_istio_h2() {
    let ca = Ca::new("mesh");
    let server = ca.leaf(&[], &[SERVER_ID], false);
    let client = ca.leaf(&[], &[CLIENT_ID], false);
    let dir = workload_dir(&ca, &client);
    let backend = Backend::builder()
        .name("api-v2")
        .tls(server_config(&server, Some(&ca)))
        .start()
        .await
        .unwrap();
    let se = ServiceEntry::new(&CONN_TEST)
        .protocol("GRPC")
        .endpoint(
            backend.addr().ip(),
            backend.addr().port(),
            [("version", "v2")],
        )
        .to_string();
    let dr = DestinationRule::new(&CONN_TEST)
        .subset_with_policy("v2", "{tls: {mode: ISTIO_MUTUAL}}")
        .to_string();
    let vs = virtual_service(
        &CONN_TEST,
        "  - route: [{destination: {host: api.conn.test, subset: v2}}]\n",
    );
    let (mesh, _h) = connector_mesh(
        &[&se, &dr, &vs],
        MeshClient::builder().workload_certificates(dir.path()),
    );
    let (status, _, _) = fetch(&mesh, conn_get("/")).await.unwrap();
    assert_eq!(status, 200);
    let tls = backend.tls_connections();
    assert_eq!(
        tls[0].sni.as_deref(),
        Some("outbound_.80_.v2_.api.conn.test")
    );
    assert_eq!(tls[0].offered_alpn, ["istio-h2", "istio", "h2"]);
    assert_eq!(tls[0].alpn.as_deref(), Some("h2"));
    assert_eq!(backend.received()[0].version, http::Version::HTTP_2);
    assert_eq!(
        backend.received()[0].host(),
        Some("api.conn.test"),
        ":authority"
    );
}

#[tokio::test]
async fn istio_mutual_checks_the_server_identity() {
    let ca = Ca::new("mesh");
    let client = ca.leaf(&[], &[CLIENT_ID], false);
    let dir = workload_dir(&ca, &client);
    // Another trust domain: refused unless the trust domain check is off.
    let foreign = ca.leaf(&[], &["spiffe://other.domain/ns/default/sa/api"], false);
    let backend = Backend::builder()
        .tls(server_config(&foreign, Some(&ca)))
        .start()
        .await
        .unwrap();
    let docs = [
        conn_entry("HTTP", &[backend.addr()]),
        conn_rule("    tls: {mode: ISTIO_MUTUAL}\n"),
        no_retries(&CONN_TEST),
    ];
    let docs: Vec<&str> = docs.iter().map(String::as_str).collect();
    let (mesh, _h) = connector_mesh(
        &docs,
        MeshClient::builder().workload_certificates(dir.path()),
    );
    let err = fetch(&mesh, conn_get("/")).await.unwrap_err();
    assert!(err.is_connect(), "{err}");
    assert_eq!(
        err.transport_failure_reason(),
        Some(CERTIFICATE_VERIFY_FAILED)
    );
    let (mesh, _h) = connector_mesh(
        &docs,
        MeshClient::builder()
            .workload_certificates(dir.path())
            .verify_trust_domain(false),
    );
    assert_eq!(fetch(&mesh, conn_get("/")).await.unwrap().0, 200);

    // subjectAltNames name the one identity expected.
    let server = ca.leaf(&[], &[SERVER_ID], false);
    let backend = Backend::builder()
        .tls(server_config(&server, Some(&ca)))
        .start()
        .await
        .unwrap();
    for (sans, ok) in [(SERVER_ID, true), (CLIENT_ID, false)] {
        let dr = conn_rule(&format!(
            "    tls: {{mode: ISTIO_MUTUAL, subjectAltNames: [\"{sans}\"]}}\n"
        ));
        let (mesh, _h) = connector_mesh(
            &[
                &conn_entry("HTTP", &[backend.addr()]),
                &dr,
                &no_retries(&CONN_TEST),
            ],
            MeshClient::builder().workload_certificates(dir.path()),
        );
        assert_eq!(fetch(&mesh, conn_get("/")).await.is_ok(), ok, "{sans}");
    }
}

#[tokio::test]
async fn simple_tls_verifies_the_server_by_its_host_and_ca() {
    let ca = Ca::new("public");
    let good = ca.leaf(&["api.conn.test"], &[], false);
    let dir = Dir::new();
    let ca_file = dir.write("ca.pem", &ca.pem());
    let simple = conn_rule(&format!(
        "    tls: {{mode: SIMPLE, caCertificates: {}}}\n",
        ca_file.display()
    ));
    let backend = Backend::builder()
        .name("api")
        .tls(server_config(&good, None))
        .start()
        .await
        .unwrap();
    let (mesh, _h) = connector_mesh(
        &[&conn_entry("HTTP", &[backend.addr()]), &simple],
        MeshClient::builder(),
    );
    assert_eq!(fetch(&mesh, conn_get("/")).await.unwrap().0, 200);
    let tls = backend.tls_connections();
    assert_eq!(tls[0].sni.as_deref(), Some("api.conn.test"), "auto SNI");
    assert!(
        tls[0].offered_alpn.is_empty(),
        "no ALPN for HTTP/1.1 clusters"
    );

    // Each bad certificate: a local reply with Envoy's transport failure reason.
    let other_ca = Ca::new("other");
    let bad = [
        ("expired", ca.leaf(&["api.conn.test"], &[], true)),
        ("wrong SAN", ca.leaf(&["someone.else.test"], &[], false)),
        ("wrong CA", other_ca.leaf(&["api.conn.test"], &[], false)),
    ];
    for (what, leaf) in bad {
        let backend = Backend::builder()
            .tls(server_config(&leaf, None))
            .start()
            .await
            .unwrap();
        let (mesh, _h) = connector_mesh(
            &[
                &conn_entry("HTTP", &[backend.addr()]),
                &simple,
                &no_retries(&CONN_TEST),
            ],
            MeshClient::builder(),
        );
        let err = fetch(&mesh, conn_get("/")).await.unwrap_err();
        assert!(err.is_connect(), "{what}: {err}");
        let (status, _, body) = local_reply(&err).await;
        assert_eq!(status, 503, "{what}");
        assert_eq!(
            body,
            format!(
                "upstream connect error or disconnect/reset before headers. reset reason: \
                 remote connection failure, transport failure reason: {CERTIFICATE_VERIFY_FAILED}"
            ),
            "{what}"
        );
        assert_eq!(backend.count(), 0, "{what}: nothing reached the server");
    }

    // insecureSkipVerify accepts the wrong CA.
    let leaf = other_ca.leaf(&["api.conn.test"], &[], false);
    let backend = Backend::builder()
        .tls(server_config(&leaf, None))
        .start()
        .await
        .unwrap();
    let (mesh, _h) = connector_mesh(
        &[
            &conn_entry("HTTP", &[backend.addr()]),
            &conn_rule("    tls: {mode: SIMPLE, insecureSkipVerify: true}\n"),
        ],
        MeshClient::builder(),
    );
    assert_eq!(fetch(&mesh, conn_get("/")).await.unwrap().0, 200);
}

#[tokio::test]
async fn simple_tls_with_sni_and_subject_alt_names() {
    let ca = Ca::new("public");
    let leaf = ca.leaf(&["backend.internal.test"], &[], false);
    let dir = Dir::new();
    let ca_file = dir.write("ca.pem", &ca.pem());
    let backend = Backend::builder()
        .tls(server_config(&leaf, None))
        .start()
        .await
        .unwrap();
    let (mesh, _h) = connector_mesh(
        &[
            &conn_entry("HTTP", &[backend.addr()]),
            &conn_rule(&format!(
                "    tls: {{mode: SIMPLE, caCertificates: {}, sni: fixed.sni.test, subjectAltNames: [backend.internal.test]}}\n",
                ca_file.display()
            )),
        ],
        MeshClient::builder(),
    );
    assert_eq!(fetch(&mesh, conn_get("/")).await.unwrap().0, 200);
    assert_eq!(
        backend.tls_connections()[0].sni.as_deref(),
        Some("fixed.sni.test")
    );
}

#[tokio::test]
async fn mutual_tls_presents_the_client_certificate_from_files() {
    let ca = Ca::new("corp");
    let server = ca.leaf(&["api.conn.test"], &[], false);
    let client = ca.leaf(&["client.test"], &[], false);
    let dir = Dir::new();
    let ca_file = dir.write("ca.pem", &ca.pem());
    let cert = dir.write("client.pem", &client.pem);
    let key = dir.write("client.key", &client.key_pem);
    let backend = Backend::builder()
        .tls(server_config(&server, Some(&ca)))
        .start()
        .await
        .unwrap();
    let mutual = |key: &Path| {
        conn_rule(&format!(
            "    tls: {{mode: MUTUAL, caCertificates: {}, clientCertificate: {}, privateKey: {}}}\n",
            ca_file.display(),
            cert.display(),
            key.display()
        ))
    };
    let (mesh, _h) = connector_mesh(
        &[&conn_entry("HTTP", &[backend.addr()]), &mutual(&key)],
        MeshClient::builder(),
    );
    assert_eq!(fetch(&mesh, conn_get("/")).await.unwrap().0, 200);
    assert_eq!(
        backend.tls_connections()[0].client_certificate.as_deref(),
        Some(client.der.as_ref())
    );

    // A key file that is not there: Envoy's "secret not supplied", nothing sent.
    let missing = dir.path().join("missing.key");
    let (mesh, _h) = connector_mesh(
        &[
            &conn_entry("HTTP", &[backend.addr()]),
            &mutual(&missing),
            &no_retries(&CONN_TEST),
        ],
        MeshClient::builder(),
    );
    let err = fetch(&mesh, conn_get("/")).await.unwrap_err();
    assert!(err.is_connect(), "{err}");
    assert_eq!(
        err.transport_failure_reason(),
        Some("TLS error: Secret is not supplied by SDS")
    );
    assert!(
        err.to_string().contains("missing.key"),
        "names the file: {err}"
    );
}

#[tokio::test]
async fn a_stalled_handshake_is_bounded_by_the_connect_timeout() {
    // A listener that never accepts: the kernel completes TCP, nobody answers the ClientHello.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (mesh, _h) = connector_mesh(
        &[
            &conn_entry("HTTP", &[addr]),
            &conn_rule(
                "    connectionPool: {tcp: {connectTimeout: 3s}}\n    tls: {mode: SIMPLE, insecureSkipVerify: true}\n",
            ),
            &no_retries(&CONN_TEST),
        ],
        MeshClient::builder(),
    );
    tokio::time::pause();
    let started = tokio::time::Instant::now();
    let err = fetch(&mesh, conn_get("/")).await.unwrap_err();
    let elapsed = started.elapsed();
    assert!(
        (Duration::from_secs(3)..=Duration::from_millis(3001)).contains(&elapsed),
        "{elapsed:?}"
    );
    assert!(err.is_connect() && err.is_timeout(), "{err}");
    drop(listener);
}

#[tokio::test]
async fn garbage_instead_of_a_server_hello_fails_the_connection() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((mut s, _)) = listener.accept().await {
            let mut buf = [0u8; 512];
            let _ = s.read(&mut buf).await;
            let _ = s
                .write_all(b"HTTP/1.1 400 Bad Request\r\n\r\nnot TLS at all")
                .await;
        }
    });
    let (mesh, _h) = connector_mesh(
        &[
            &conn_entry("HTTP", &[addr]),
            &conn_rule("    tls: {mode: SIMPLE, insecureSkipVerify: true}\n"),
            &no_retries(&CONN_TEST),
        ],
        MeshClient::builder(),
    );
    let err = fetch(&mesh, conn_get("/")).await.unwrap_err();
    assert!(err.is_connect(), "{err}");
    let reason = err
        .transport_failure_reason()
        .unwrap_or_default()
        .to_owned();
    assert!(
        reason.starts_with("TLS_error:|") && reason.ends_with(":TLS_error_end"),
        "{reason}"
    );
    assert_eq!(local_reply(&err).await.0, 503);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_rotate_under_load_with_no_failed_request() {
    let ca = Ca::new("mesh");
    let server = ca.leaf(&[], &[SERVER_ID], false);
    let old = ca.leaf(&[], &[CLIENT_ID], false);
    let new = ca.leaf(&[], &[CLIENT_ID], false);
    let dir = workload_dir(&ca, &old);
    let backend = Backend::builder()
        .tls(server_config(&server, Some(&ca)))
        .start()
        .await
        .unwrap();
    // Every request on a new connection, so every request makes a handshake.
    let (mesh, _h) = connector_mesh(
        &[
            &conn_entry("HTTP", &[backend.addr()]),
            &conn_rule(
                "    tls: {mode: ISTIO_MUTUAL}\n    connectionPool: {http: {maxRequestsPerConnection: 1}}\n",
            ),
            &no_retries(&CONN_TEST),
        ],
        MeshClient::builder().workload_certificates(dir.path()),
    );
    const WORKERS: usize = 4;
    const PER_WORKER: usize = 60;
    let done = Arc::new(AtomicUsize::new(0));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..WORKERS {
        let mesh = mesh.clone();
        let done = Arc::clone(&done);
        workers.spawn(async move {
            let mut failures = Vec::new();
            for _ in 0..PER_WORKER {
                match fetch(&mesh, conn_get("/")).await {
                    Ok((s, _, _)) if s == 200 => {}
                    other => failures.push(format!("{other:?}")),
                }
                done.fetch_add(1, Ordering::SeqCst);
            }
            failures
        });
    }
    // Rotate half-way, the way istio-agent does: each file replaced on its own, the
    // certificate first (for a moment it does not match the key).
    while done.load(Ordering::SeqCst) < WORKERS * PER_WORKER / 2 {
        tokio::task::yield_now().await;
    }
    dir.write("cert-chain.pem", &new.pem);
    tokio::task::yield_now().await;
    dir.write("key.pem", &new.key_pem);
    let mut failures = Vec::new();
    while let Some(r) = tokio::time::timeout(Duration::from_secs(120), workers.join_next())
        .await
        .expect("load finished")
    {
        failures.extend(r.unwrap());
    }
    assert!(failures.is_empty(), "{failures:?}");
    assert_eq!(backend.count(), (WORKERS * PER_WORKER) as u64);
    let presented: Vec<Option<Vec<u8>>> = backend
        .tls_connections()
        .into_iter()
        .map(|t| t.client_certificate)
        .collect();
    let old_n = presented
        .iter()
        .filter(|c| c.as_deref() == Some(old.der.as_ref()))
        .count();
    let new_n = presented
        .iter()
        .filter(|c| c.as_deref() == Some(new.der.as_ref()))
        .count();
    assert_eq!(old_n + new_n, presented.len());
    assert!(old_n > 0 && new_n > 0, "old {old_n}, new {new_n}");
    // After the rotation, new connections present the new certificate.
    fetch(&mesh, conn_get("/")).await.unwrap();
    let last = backend.tls_connections().pop().unwrap();
    assert_eq!(last.client_certificate.as_deref(), Some(new.der.as_ref()));
}
