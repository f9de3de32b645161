//! `serve`: HTTPS (rustls with the ring provider) with graceful shutdown.

use std::pin::pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use hostcert_proto::api::{encode_blob, SshRootsResponse};
use hostcert_proto::ott::OttVerifier;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::ServerConfig;
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::api::{self, AppState};
use crate::auth::Checker;
use crate::ca::Policy;
use crate::cli::ServeArgs;
use crate::layout::Layout;
use crate::writer::Writer;
use crate::{db, timespec};

/// A client must finish the TLS handshake within this.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Open connections get this long to finish after a shutdown signal.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

fn tls_config(layout: &Layout) -> Result<Arc<ServerConfig>> {
    let certs = CertificateDer::pem_file_iter(layout.tls_cert())
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .context("reading the TLS certificate")?;
    let key = PrivateKeyDer::from_pem_file(layout.tls_key()).context("reading the TLS key")?;
    let mut config =
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .context("loading the TLS certificate and key")?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Runs `serve`.
pub fn run(args: &ServeArgs) -> Result<()> {
    let layout = Layout::new(&args.dir.dir);
    let authority = layout.load_authority()?;
    let ttl = timespec::parse_ttl(&args.host_cert_ttl)?;
    let policy = Policy::new(ttl)?;
    let tls = tls_config(&layout)?;
    let listen = args
        .listen
        .clone()
        .unwrap_or_else(|| authority.config.address.clone());
    let (writer, writer_thread) = Writer::start(db::open(&layout.db())?)?;
    let ssh_roots = SshRootsResponse {
        user_key: vec![encode_blob(&authority.user_ca.public_key().to_bytes()?)],
        host_key: vec![encode_blob(&authority.host_ca.public_key().to_bytes()?)],
    };
    let checker = Checker {
        hosts: authority.config.dns.clone(),
        provisioner: authority.config.provisioner.clone(),
        ott: OttVerifier::new(*authority.provisioner.verifying_key()),
    };
    let state = Arc::new(AppState {
        checker,
        host_ca: authority.host_ca,
        policy,
        root_pem: authority.root_pem,
        root_fingerprint: authority.config.root_fingerprint.clone(),
        ssh_roots,
        admin_digest: Sha256::digest(authority.admin_credential.as_bytes()).into(),
        writer,
        reader: Mutex::new(db::open(&layout.db())?),
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let served = runtime.block_on(serve(state.clone(), &listen, tls));
    // Connections are drained; commit what is queued before exiting.
    state.writer.stop();
    writer_thread.join();
    runtime.shutdown_timeout(Duration::from_secs(1));
    tracing::info!("stopped");
    served
}

async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!("cannot watch SIGTERM: {e}");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}

async fn serve(state: Arc<AppState>, listen: &str, tls: Arc<ServerConfig>) -> Result<()> {
    let listener = TcpListener::bind(listen)
        .await
        .with_context(|| format!("listening on {listen}"))?;
    let addr = listener.local_addr()?;
    // Machine-readable for tests and scripts that ask for port 0.
    println!("listening on https://{addr}");
    tracing::info!(%addr, "serving");
    let acceptor = TlsAcceptor::from(tls);
    let app = api::router(state);
    let graceful = GracefulShutdown::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new());
    let mut signal = pin!(shutdown_signal());
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        // Usually EMFILE: back off instead of spinning.
                        tracing::warn!("accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let (acceptor, app, builder) = (acceptor.clone(), app.clone(), builder.clone());
                let watcher = graceful.watcher();
                tokio::spawn(async move {
                    let Ok(Ok(tls)) = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await else {
                        return;
                    };
                    let conn = builder.serve_connection(TokioIo::new(tls), TowerToHyperService::new(app));
                    if let Err(e) = watcher.watch(conn).await {
                        tracing::debug!("connection ended: {e}");
                    }
                });
            }
            _ = &mut signal => break,
        }
    }
    drop(listener);
    tracing::info!("shutting down");
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after {DRAIN_TIMEOUT:?}; closing them");
    }
    Ok(())
}
