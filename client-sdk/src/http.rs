//! A small pooled HTTP/1.1 client for `http://` and `https://`: the SDK talks to operator
//! daemons with it, and the daemons use it for replication and VerneMQ's management API.
//!
//! TLS (`https://` here, `mqtts://` brokers through [`default_tls_config`]) is rustls on ring.
//! It trusts the system's root certificates plus, when the environment variable
//! [`CA_CERT_ENV`] (`FASTDATA_CA_CERT`) names a PEM file, the CA certificates in it, e.g.
//! the private CA of a test network. [`HttpClient::with_extra_roots`] and [`tls_config`] take
//! extra CAs explicitly instead.

use std::{
    sync::{Arc, OnceLock},
    time::Duration,
};

use http_body_util::{BodyExt, Full, Limited};
use hyper::{body::Bytes, HeaderMap, Method, Request, StatusCode};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::{
    client::legacy::{connect::HttpConnector, Client},
    rt::TokioExecutor,
};
use rustls::{
    pki_types::{pem::PemObject, CertificateDer},
    ClientConfig, RootCertStore,
};

/// How long one request may take, end to end.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Environment variable naming a PEM file of extra CA certificates to trust for `https://`
/// operator APIs and `mqtts://` brokers (on top of the system's roots).
pub const CA_CERT_ENV: &str = "FASTDATA_CA_CERT";

/// An answer: status, headers, body.
pub struct Answer {
    /// HTTP status.
    pub status: StatusCode,
    /// Response headers.
    pub headers: HeaderMap,
    /// Body (read up to the request's limit).
    pub body: Bytes,
}

type Body = Full<Bytes>;

#[derive(Clone)]
enum Inner {
    /// `http://` and `https://`.
    Tls(Client<HttpsConnector<HttpConnector>, Body>),
    /// `http://` only; `https://` requests fail with the reason.
    Plain(Client<HttpConnector, Body>, Arc<str>),
}

/// A pooled HTTP client.
#[derive(Clone)]
pub struct HttpClient {
    inner: Inner,
}

impl Default for HttpClient {
    fn default() -> Self {
        Self::new()
    }
}

impl HttpClient {
    /// A client trusting the system's roots and the CAs of `$FASTDATA_CA_CERT`. If that file
    /// cannot be read or parsed, `https://` requests fail with the reason (`http://` works).
    pub fn new() -> Self {
        match default_tls_config() {
            Ok(config) => Self::with_tls_config(config),
            Err(e) => Self {
                inner: Inner::Plain(
                    Client::builder(TokioExecutor::new()).build_http(),
                    Arc::from(e),
                ),
            },
        }
    }

    /// A client trusting the system's roots plus the CA certificates in `pem` (one or more
    /// `CERTIFICATE` blocks); `$FASTDATA_CA_CERT` is not read.
    pub fn with_extra_roots(pem: &[u8]) -> Result<Self, String> {
        Ok(Self::with_tls_config(tls_config(Some(pem))?))
    }

    /// A client with this TLS configuration (HTTP/1.1 only: its ALPN protocols are cleared).
    pub fn with_tls_config(config: Arc<ClientConfig>) -> Self {
        let mut config = (*config).clone();
        config.alpn_protocols.clear();
        let connector = HttpsConnectorBuilder::new()
            .with_tls_config(config)
            .https_or_http()
            .enable_http1()
            .build();
        Self {
            inner: Inner::Tls(Client::builder(TokioExecutor::new()).build(connector)),
        }
    }

    /// `GET url` with extra headers: status and body (read up to `limit` bytes).
    pub async fn get(
        &self,
        url: &str,
        headers: &[(&str, String)],
        limit: usize,
    ) -> Result<(StatusCode, Bytes), String> {
        let answer = self
            .send(Method::GET, url, headers, Bytes::new(), limit)
            .await?;
        Ok((answer.status, answer.body))
    }

    /// `POST url` with extra headers and `body`: status and body (read up to `limit` bytes).
    pub async fn post(
        &self,
        url: &str,
        headers: &[(&str, String)],
        body: impl Into<Bytes>,
        limit: usize,
    ) -> Result<(StatusCode, Bytes), String> {
        let answer = self
            .send(Method::POST, url, headers, body.into(), limit)
            .await?;
        Ok((answer.status, answer.body))
    }

    /// Sends a request; the body of the answer is read up to `limit` bytes. Errors carry
    /// their causes (e.g. `invalid peer certificate: UnknownIssuer`).
    pub async fn send(
        &self,
        method: Method,
        url: &str,
        headers: &[(&str, String)],
        body: Bytes,
        limit: usize,
    ) -> Result<Answer, String> {
        let mut request = Request::builder().method(method).uri(url);
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let request = request
            .body(Full::new(body))
            .map_err(|e| format!("bad request for {url}: {e}"))?;
        let work = async {
            let response = match &self.inner {
                Inner::Tls(client) => client.request(request).await,
                Inner::Plain(client, why) => {
                    if request.uri().scheme_str() == Some("https") {
                        return Err(format!("{url}: no TLS: {why}"));
                    }
                    client.request(request).await
                }
            }
            .map_err(|e| format!("{url}: {}", causes(&e)))?;
            let status = response.status();
            let headers = response.headers().clone();
            let body = Limited::new(response.into_body(), limit)
                .collect()
                .await
                .map_err(|e| format!("{url}: reading body: {e}"))?
                .to_bytes();
            Ok(Answer {
                status,
                headers,
                body,
            })
        };
        tokio::time::timeout(REQUEST_TIMEOUT, work)
            .await
            .map_err(|_| format!("{url}: timed out"))?
    }
}

/// `error: cause: cause…`, skipping causes whose text the previous one already shows.
fn causes(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let line = cause.to_string();
        if !text.contains(&line) {
            text = format!("{text}: {line}");
        }
        source = cause.source();
    }
    text
}

/// The certificates of the `CERTIFICATE` blocks of `pem`; an error if there are none or one
/// is malformed.
pub fn parse_certificates(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("malformed PEM: {e}"))?;
    if certs.is_empty() {
        return Err("no PEM CERTIFICATE block found".into());
    }
    Ok(certs)
}

/// The system's root certificates (loaded once; unreadable ones are skipped with a warning).
fn system_roots() -> &'static RootCertStore {
    static ROOTS: OnceLock<RootCertStore> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let loaded = rustls_native_certs::load_native_certs();
        for e in &loaded.errors {
            tracing::warn!("system root certificates: {e}");
        }
        let mut roots = RootCertStore::empty();
        let (_, ignored) = roots.add_parsable_certificates(loaded.certs);
        if ignored > 0 {
            tracing::debug!(ignored, "unparsable system root certificates skipped");
        }
        roots
    })
}

/// A TLS client configuration (rustls, ring) trusting the system's roots plus the CA
/// certificates in `extra_roots_pem`.
pub fn tls_config(extra_roots_pem: Option<&[u8]>) -> Result<Arc<ClientConfig>, String> {
    let mut roots = system_roots().clone();
    if let Some(pem) = extra_roots_pem {
        for cert in parse_certificates(pem)? {
            roots
                .add(cert)
                .map_err(|e| format!("not a usable CA certificate: {e}"))?;
        }
    }
    let config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS set-up: {e}"))?
            .with_root_certificates(roots)
            .with_no_client_auth();
    Ok(Arc::new(config))
}

/// [`tls_config`] with the CAs of the PEM file `$FASTDATA_CA_CERT` if set (read now).
pub fn default_tls_config() -> Result<Arc<ClientConfig>, String> {
    match std::env::var_os(CA_CERT_ENV) {
        None => tls_config(None),
        Some(path) => {
            let path = std::path::Path::new(&path);
            let pem = std::fs::read(path)
                .map_err(|e| format!("{CA_CERT_ENV}={}: cannot read: {e}", path.display()))?;
            tls_config(Some(&pem)).map_err(|e| format!("{CA_CERT_ENV}={}: {e}", path.display()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_pem_is_refused_clearly() {
        let none = tls_config(Some(b"not a certificate"))
            .err()
            .unwrap_or_default();
        assert!(none.contains("no PEM CERTIFICATE"), "{none}");
        let broken = b"-----BEGIN CERTIFICATE-----\nAAAA\n";
        let err = tls_config(Some(broken)).err().unwrap_or_default();
        assert!(err.contains("malformed PEM"), "{err}");
        let garbage = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        let err = HttpClient::with_extra_roots(garbage)
            .err()
            .unwrap_or_default();
        assert!(err.contains("not a usable CA certificate"), "{err}");
        assert!(tls_config(None).is_ok());
    }

    #[tokio::test]
    async fn without_tls_https_fails_with_the_reason() {
        let client = HttpClient {
            inner: Inner::Plain(
                Client::builder(TokioExecutor::new()).build_http(),
                Arc::from("FASTDATA_CA_CERT=/x: cannot read"),
            ),
        };
        let err = client
            .get("https://127.0.0.1:1/", &[], 10)
            .await
            .err()
            .unwrap_or_default();
        assert!(err.contains("no TLS: FASTDATA_CA_CERT=/x"), "{err}");
    }
}
