//! A small pooled HTTP/1.1 client (plain `http://`): the SDK talks to operator daemons with
//! it, and the daemons use it for replication and VerneMQ's management API.

use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::{body::Bytes, HeaderMap, Method, Request, StatusCode};
use hyper_util::{
    client::legacy::{connect::HttpConnector, Client},
    rt::TokioExecutor,
};

/// How long one request may take, end to end.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// An answer: status, headers, body.
pub struct Answer {
    /// HTTP status.
    pub status: StatusCode,
    /// Response headers.
    pub headers: HeaderMap,
    /// Body (read up to the request's limit).
    pub body: Bytes,
}

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

    /// Sends a request; the body of the answer is read up to `limit` bytes.
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
            let response = self
                .inner
                .request(request)
                .await
                .map_err(|e| format!("{url}: {e}"))?;
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
