//! A small HTTP/1.1 client (plain `http://`) for replication and VerneMQ's management API.

use std::time::Duration;

use axum::{body::Bytes, http::StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::{
    client::legacy::{connect::HttpConnector, Client},
    rt::TokioExecutor,
};

/// How long one request may take, end to end.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// A pooled HTTP client.
#[derive(Clone)]
pub struct HttpClient {
    inner: Client<HttpConnector, Full<Bytes>>,
}

impl Default for HttpClient {
    fn default() -> Self {
        Self::new()
    }
}

impl HttpClient {
    /// A new client.
    pub fn new() -> Self {
        Self {
            inner: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    /// `GET url` with extra headers; the body is read up to `limit` bytes.
    pub async fn get(
        &self,
        url: &str,
        headers: &[(&str, String)],
        limit: usize,
    ) -> Result<(StatusCode, Bytes), String> {
        self.send(axum::http::Method::GET, url, headers, Bytes::new(), limit)
            .await
    }

    /// `POST url` with extra headers and `body`; the answer is read up to `limit` bytes.
    pub async fn post(
        &self,
        url: &str,
        headers: &[(&str, String)],
        body: impl Into<Bytes>,
        limit: usize,
    ) -> Result<(StatusCode, Bytes), String> {
        self.send(axum::http::Method::POST, url, headers, body.into(), limit)
            .await
    }

    async fn send(
        &self,
        method: axum::http::Method,
        url: &str,
        headers: &[(&str, String)],
        body: Bytes,
        limit: usize,
    ) -> Result<(StatusCode, Bytes), String> {
        let mut request = axum::http::Request::builder().method(method).uri(url);
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let request = request
            .body(Full::new(body))
            .map_err(|e| format!("bad request for {url}: {e}"))?;
        let work = async {
            let response = self
                .inner
                .request(request)
                .await
                .map_err(|e| format!("{url}: {e}"))?;
            let status = response.status();
            let body = Limited::new(response.into_body(), limit)
                .collect()
                .await
                .map_err(|e| format!("{url}: reading body: {e}"))?
                .to_bytes();
            Ok((status, body))
        };
        tokio::time::timeout(REQUEST_TIMEOUT, work)
            .await
            .map_err(|_| format!("{url}: timed out"))?
    }
}
