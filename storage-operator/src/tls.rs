//! TLS (rustls on ring): the HTTPS listener of the API and the PEM files of the
//! configuration (`[http] tls_cert`, `tls_key`, `ca_cert`).

use std::{io, net::SocketAddr, path::Path, sync::Arc, time::Duration};

use anyhow::Context;
use rustls::{
    pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer},
    ClientConfig, ServerConfig,
};
use tokio::{
    net::{TcpListener, TcpStream},
    sync::{mpsc, Semaphore},
    task::JoinHandle,
};
use tokio_rustls::{server::TlsStream, TlsAcceptor};

/// How long a client may take to complete the TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Handshakes in progress at once; further connections wait to be accepted.
pub const MAX_HANDSHAKES: usize = 256;

fn read(what: &str, path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read {what} {}", path.display()))
}

/// The server configuration for `cert` (PEM: the certificate, then any intermediates) and
/// `key` (PEM: a PKCS#8, PKCS#1 or SEC1 private key), checked to match; ALPN `http/1.1`.
pub fn server_config(cert: &Path, key: &Path) -> anyhow::Result<Arc<ServerConfig>> {
    let chain = CertificateDer::pem_slice_iter(&read("http.tls_cert", cert)?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow::anyhow!("http.tls_cert {}: malformed PEM: {e}", cert.display()))?;
    if chain.is_empty() {
        anyhow::bail!(
            "http.tls_cert {}: no PEM CERTIFICATE block found",
            cert.display()
        );
    }
    let key_der = PrivateKeyDer::from_pem_slice(&read("http.tls_key", key)?).map_err(|e| {
        anyhow::anyhow!(
            "http.tls_key {}: no usable PEM private key ({e})",
            key.display()
        )
    })?;
    let mut config =
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .context("TLS set-up")?
            .with_no_client_auth()
            .with_single_cert(chain, key_der)
            .map_err(|e| {
                anyhow::anyhow!(
                    "http.tls_cert {} with http.tls_key {}: {e}",
                    cert.display(),
                    key.display()
                )
            })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The client configuration of the daemon's outgoing TLS (other operators' `https://` APIs,
/// VerneMQ's API, the broker with `broker.tls`): the system's roots plus the CAs of `ca_cert`,
/// or of `$FASTDATA_CA_CERT` without it.
pub fn client_config(ca_cert: Option<&Path>) -> anyhow::Result<Arc<ClientConfig>> {
    match ca_cert {
        Some(path) => {
            let pem = read("http.ca_cert", path)?;
            fastdata_sdk::http::tls_config(Some(&pem))
                .map_err(|e| anyhow::anyhow!("http.ca_cert {}: {e}", path.display()))
        }
        None => fastdata_sdk::http::default_tls_config().map_err(anyhow::Error::msg),
    }
}

/// A TLS listener for `axum::serve`: handshakes run in their own tasks (a slow client does
/// not hold up the others) and only completed ones are handed to the server; failed ones are
/// logged at debug level and dropped.
pub struct TlsListener {
    incoming: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local_addr: SocketAddr,
    acceptor: Option<JoinHandle<()>>,
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        if let Some(acceptor) = &self.acceptor {
            acceptor.abort();
        }
    }
}

impl TlsListener {
    /// Serves TLS with `config` on `listener` (the accept loop runs in its own task).
    pub fn new(listener: TcpListener, config: Arc<ServerConfig>) -> io::Result<Self> {
        let (mut this, accept) = Self::with_acceptor(listener, config)?;
        this.acceptor = Some(tokio::spawn(accept));
        Ok(this)
    }

    /// The listener and its accept loop, for the caller to run (the daemon supervises it);
    /// the loop ends when the listener is dropped.
    pub fn with_acceptor(
        listener: TcpListener,
        config: Arc<ServerConfig>,
    ) -> io::Result<(Self, impl std::future::Future<Output = ()> + Send + 'static)> {
        let local_addr = listener.local_addr()?;
        let (tx, incoming) = mpsc::channel(64);
        let accept = accept_loop(listener, TlsAcceptor::from(config), tx);
        Ok((
            Self {
                incoming,
                local_addr,
                acceptor: None,
            },
            accept,
        ))
    }
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    tx: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>,
) {
    let handshakes = Arc::new(Semaphore::new(MAX_HANDSHAKES));
    loop {
        let permit = tokio::select! {
            _ = tx.closed() => return,
            permit = handshakes.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => return,
            },
        };
        let (tcp, peer) = tokio::select! {
            _ = tx.closed() => return,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: wait instead of spinning.
                    tracing::warn!("HTTPS accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let (acceptor, tx) = (acceptor.clone(), tx.clone());
        tokio::spawn(async move {
            let _permit = permit;
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(stream)) => {
                    let _ = tx.send((stream, peer)).await;
                }
                Ok(Err(e)) => tracing::debug!(%peer, "TLS handshake failed: {e}"),
                Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
            }
        });
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.incoming.recv().await {
            Some(accepted) => accepted,
            // The accept loop only ends when this listener is dropped.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(self.local_addr)
    }
}
