//! The HTTP side of the client: where the server and the token come from, the reqwest
//! wrapper, and turning problem+json answers into sentences for the terminal.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{anyhow, Context};
use clap::Args;
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use verbund_domain::page::Page;

use super::output::Format;

/// How to reach the API: server, credential and output format. Global, so that they may
/// be given after any subcommand (`verbund site list --server …`).
#[derive(Debug, Clone, Args)]
pub struct ConnArgs {
    /// Base URL of the verbund server.
    #[arg(
        long,
        env = "VERBUND_SERVER",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    pub server: String,
    /// API token; without one, the file `$VERBUND_DATA/admin.token` is used
    /// (VERBUND_DATA defaults to `data`).
    #[arg(long, env = "VERBUND_TOKEN", hide_env_values = true, global = true)]
    pub token: Option<String>,
    /// Output format.
    #[arg(short, long, value_enum, default_value_t = Format::Table, global = true)]
    pub output: Format,
}

/// Where the token came from, so that a refusal can say which one was refused.
#[derive(Debug, Clone)]
enum TokenSource {
    Given,
    File(PathBuf),
}

/// The server's base URL, checked.
fn server_url(conn: &ConnArgs) -> anyhow::Result<String> {
    let base = conn.server.trim_end_matches('/').to_string();
    if !(base.starts_with("http://") || base.starts_with("https://")) {
        anyhow::bail!("the server URL `{base}` must start with `http://` or `https://`");
    }
    Ok(base)
}

fn http_client() -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(120))
        .user_agent(concat!("verbund-cli/", env!("CARGO_PKG_VERSION")))
        .build()
        .context("cannot set up the HTTP client")
}

/// A connection to the verbund API.
pub struct Api {
    base: String,
    token: String,
    source: TokenSource,
    http: reqwest::Client,
}

/// The problem details document the server sends with every error (RFC 9457).
#[derive(Debug, Deserialize)]
struct Problem {
    title: Option<String>,
    detail: Option<String>,
}

/// A list answer: all items fetched and the cursor of the page after them, if any.
pub struct Listing<T> {
    pub items: Vec<T>,
    pub next: Option<String>,
}

impl Api {
    /// A connection without an API token, for the one endpoint that needs none
    /// (completing a password reset, whose token is the credential).
    pub fn anonymous(conn: &ConnArgs) -> anyhow::Result<Api> {
        let base = server_url(conn)?;
        Ok(Api {
            base,
            token: String::new(),
            source: TokenSource::Given,
            http: http_client()?,
        })
    }

    pub fn connect(conn: &ConnArgs) -> anyhow::Result<Api> {
        let base = server_url(conn)?;
        let (token, source) = match conn.token.as_deref().map(str::trim) {
            Some(t) if !t.is_empty() => (t.to_string(), TokenSource::Given),
            _ => {
                let data = std::env::var_os("VERBUND_DATA")
                    .filter(|d| !d.is_empty())
                    .map(PathBuf::from)
                    .unwrap_or_else(|| PathBuf::from("data"));
                let path = data.join("admin.token");
                let text = std::fs::read_to_string(&path).map_err(|e| {
                    anyhow!(
                        "no API token: pass `--token`, set VERBUND_TOKEN, or point VERBUND_DATA \
                         at the server's data folder (cannot read {}: {e})",
                        path.display()
                    )
                })?;
                let token = text.trim().to_string();
                if token.is_empty() {
                    anyhow::bail!("no API token: {} is empty", path.display());
                }
                (token, TokenSource::File(path))
            }
        };
        Ok(Api {
            base,
            token,
            source,
            http: http_client()?,
        })
    }

    /// Sends one request; returns the status and the body, or a sentence if the server
    /// could not be reached.
    async fn send<B: Serialize + ?Sized>(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&B>,
    ) -> anyhow::Result<(StatusCode, Vec<u8>)> {
        self.send_keyed(method, path, query, body, None).await
    }

    /// `send`, with an `Idempotency-Key` header when `key` is given.
    async fn send_keyed<B: Serialize + ?Sized>(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&B>,
        key: Option<&str>,
    ) -> anyhow::Result<(StatusCode, Vec<u8>)> {
        let url = format!("{}/api/v1{path}", self.base);
        let mut req = self.http.request(method, &url).query(query);
        if !self.token.is_empty() {
            req = req.bearer_auth(&self.token);
        }
        if let Some(k) = key {
            req = req.header("Idempotency-Key", k);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.map_err(|e| self.unreachable(e))?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(|e| self.unreachable(e))?;
        Ok((status, bytes.to_vec()))
    }

    fn unreachable(&self, e: reqwest::Error) -> anyhow::Error {
        if e.is_connect() {
            anyhow!(
                "cannot reach the verbund server at {}: is `verbund serve` running?",
                self.base
            )
        } else if e.is_timeout() {
            anyhow!("the verbund server at {} did not answer in time", self.base)
        } else {
            // reqwest's own message names the URL; its source says what failed.
            let mut msg = format!("the request to the verbund server at {} failed", self.base);
            let mut cause: Option<&dyn std::error::Error> = std::error::Error::source(&e);
            while let Some(c) = cause {
                msg = format!("{msg}: {c}");
                cause = c.source();
            }
            anyhow!(msg)
        }
    }

    /// Turns an error answer into a sentence.
    fn refusal(&self, status: StatusCode, body: &[u8]) -> anyhow::Error {
        let problem: Option<Problem> = serde_json::from_slice(body).ok();
        let title = problem
            .as_ref()
            .and_then(|p| p.title.clone())
            .or_else(|| status.canonical_reason().map(str::to_string))
            .unwrap_or_default();
        let detail = match problem.and_then(|p| p.detail) {
            Some(d) => d,
            None => {
                let text = String::from_utf8_lossy(body);
                let text = text.trim();
                if text.is_empty() {
                    "no details given".to_string()
                } else {
                    text.chars().take(300).collect()
                }
            }
        };
        let code = status.as_u16();
        if status == StatusCode::UNAUTHORIZED {
            let which = match &self.source {
                TokenSource::Given => {
                    "the API token given with `--token` or VERBUND_TOKEN".to_string()
                }
                TokenSource::File(p) => format!("the API token from {}", p.display()),
            };
            anyhow!("the server did not accept {which} ({code} {title}): {detail}")
        } else if status.is_server_error() {
            anyhow!("the server failed to handle the request ({code} {title}): {detail}")
        } else {
            anyhow!("the server refused the request ({code} {title}): {detail}")
        }
    }

    fn decode<T: DeserializeOwned>(&self, status: StatusCode, body: &[u8]) -> anyhow::Result<T> {
        if !status.is_success() {
            return Err(self.refusal(status, body));
        }
        serde_json::from_slice(body).with_context(|| {
            format!(
                "the server at {} answered {} with a body this client does not understand",
                self.base,
                status.as_u16()
            )
        })
    }

    pub async fn get<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> anyhow::Result<T> {
        let (status, body) = self.send::<()>(Method::GET, path, query, None).await?;
        self.decode(status, &body)
    }

    /// Like `get`, but a 404 is `None`.
    pub async fn get_opt<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<Option<T>> {
        let (status, body) = self.send::<()>(Method::GET, path, &[], None).await?;
        if status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        self.decode(status, &body).map(Some)
    }

    /// Sends a body; returns the status (to tell 201 from 200) and the answer.
    pub async fn write<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: &B,
    ) -> anyhow::Result<(StatusCode, T)> {
        let (status, resp) = self.send(method, path, &[], Some(body)).await?;
        let value = self.decode(status, &resp)?;
        Ok((status, value))
    }

    /// Like `write`, with an `Idempotency-Key`: when the answer is lost (the server
    /// unreachable or timing out, or a gateway's 502, 503 or 504), the same request is
    /// sent again with the same key, up to `IDEMPOTENT_ATTEMPTS` times, so that the
    /// server does the work once however often it is asked. When every attempt fails,
    /// the error names the key to retry with later.
    pub async fn write_idempotent<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: &B,
        key: &str,
    ) -> anyhow::Result<(StatusCode, T)> {
        let mut attempt = 1;
        let answer = loop {
            let sent = self
                .send_keyed(method.clone(), path, &[], Some(body), Some(key))
                .await;
            let lost = match &sent {
                Err(_) => true,
                Ok((status, _)) => matches!(status.as_u16(), 502..=504),
            };
            if !lost || attempt >= IDEMPOTENT_ATTEMPTS {
                break sent;
            }
            tokio::time::sleep(Duration::from_secs(1 << (attempt - 1))).await;
            attempt += 1;
        };
        let retry_hint =
            || format!("to retry without doing it twice, pass `--idempotency-key {key}`");
        let (status, resp) = answer.map_err(|e| e.context(retry_hint()))?;
        if status.is_server_error() {
            return Err(self.refusal(status, &resp).context(retry_hint()));
        }
        let value = self.decode(status, &resp)?;
        Ok((status, value))
    }

    pub async fn delete<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        let (status, body) = self.send::<()>(Method::DELETE, path, &[], None).await?;
        self.decode(status, &body)
    }

    /// Fetches a list: one page, or with `all` every page by following `next`.
    pub async fn list<T: DeserializeOwned>(
        &self,
        path: &str,
        mut query: Vec<(&str, String)>,
        limit: Option<u32>,
        all: bool,
    ) -> anyhow::Result<Listing<T>> {
        if let Some(l) = limit {
            query.push(("limit", l.to_string()));
        }
        let mut items = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let mut q = query.clone();
            if let Some(a) = &after {
                q.push(("after", a.clone()));
            }
            let page: Page<T> = self.get(path, &q).await?;
            items.extend(page.items);
            match page.next {
                Some(next) if all => {
                    if after.as_deref() == Some(next.as_str()) {
                        anyhow::bail!("the server returned the same page twice (cursor `{next}`)");
                    }
                    after = Some(next);
                }
                next => return Ok(Listing { items, next }),
            }
        }
    }
}

/// How often `Api::write_idempotent` sends a request whose answer got lost.
const IDEMPOTENT_ATTEMPTS: u32 = 3;

/// A fresh `Idempotency-Key`: a random UUID (version 4).
pub fn idempotency_key() -> String {
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let mut key = String::with_capacity(36);
    for (i, x) in b.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            key.push('-');
        }
        key.push_str(&format!("{x:02x}"));
    }
    key
}

/// Escapes a name or id for use as one path segment.
pub fn segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~@".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idempotency_keys_are_fresh_version_4_uuids() {
        let (a, b) = (idempotency_key(), idempotency_key());
        assert_ne!(a, b);
        let groups: Vec<usize> = a.split('-').map(str::len).collect();
        assert_eq!(groups, [8, 4, 4, 4, 12], "{a}");
        assert!(a.chars().all(|c| c == '-' || c.is_ascii_hexdigit()), "{a}");
        assert_eq!(a.chars().nth(14), Some('4'), "{a}");
        assert!(
            matches!(a.chars().nth(19), Some('8' | '9' | 'a' | 'b')),
            "{a}"
        );
    }
}
