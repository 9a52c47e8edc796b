//! Each site's desired state over Git's smart HTTP protocol, read-only:
//! `GET /git/<site>.git/info/refs?service=git-upload-pack` and
//! `POST /git/<site>.git/git-upload-pack`, which Flux's source-controller, Argo CD and
//! `git clone` speak. This is the URL verbund writes into a site's roots by default.
//!
//! Why here and why so narrow: a site's engine must see its own tenants and nothing
//! else. Each site has a repository of its own (`verbund_delivery::SiteRepos`, derived
//! from the whole desired state), so what `git upload-pack` serves from it cannot contain
//! another site's object, whatever ref or object id a client asks for. Access needs the
//! site's own token — as the password of HTTP basic auth (how Flux's `secretRef` and
//! Argo CD's repository credentials send it; any user name) or as a bearer token — and
//! a token of another site is answered like an unknown repository (404), so a site cannot
//! even learn which other sites exist. Pushing is refused: the control plane is the only
//! writer of the desired state.
//!
//! The protocol work is git's own (`git upload-pack --stateless-rpc`), as `git
//! http-backend` does it: the advertisement gets the `# service=` preamble unless the
//! client asked for protocol version 2 (`Git-Protocol: version=2`), request bodies may be
//! gzip-compressed, and the pack is streamed back as git writes it.

use std::io::Read;
use std::process::Stdio;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use base64::Engine as _;
use serde::Deserialize;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use crate::AppState;
use verbund_domain::account::hash_token;

/// The most a fetch request may send (its `want`s and `have`s), compressed or not.
const MAX_REQUEST_BYTES: usize = 16 * 1024 * 1024;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/git/{repository}/info/refs", get(info_refs))
        .route("/git/{repository}/git-upload-pack", post(upload_pack))
        .route("/git/{repository}/git-receive-pack", post(receive_pack))
}

#[derive(Debug, Deserialize)]
struct Service {
    service: Option<String>,
}

/// Why a Git request is refused; a plain-text body, as git prints it to the user.
#[derive(Debug)]
enum Refusal {
    /// No credentials: git and Flux ask again with them.
    Unauthenticated,
    /// No such repository for this token (also another site's).
    NotFound,
    /// Not something this endpoint does.
    Forbidden(&'static str),
    /// The request is malformed.
    BadRequest(String),
    /// git failed on our side.
    Internal(String),
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let (status, text) = match self {
            Refusal::Unauthenticated => (
                StatusCode::UNAUTHORIZED,
                "authentication required: the site's token, as the password of HTTP basic auth"
                    .to_string(),
            ),
            Refusal::NotFound => (StatusCode::NOT_FOUND, "repository not found".to_string()),
            Refusal::Forbidden(why) => (StatusCode::FORBIDDEN, why.to_string()),
            Refusal::BadRequest(why) => (StatusCode::BAD_REQUEST, why),
            Refusal::Internal(why) => {
                tracing::error!(error = %why, "serving the desired state over git failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "the repository could not be read".to_string(),
                )
            }
        };
        let mut response = (status, format!("{text}\n")).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"verbund\""),
            );
        }
        response
    }
}

/// The secret a request presents: the password of HTTP basic auth, or a bearer token.
fn presented_secret(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = value.split_once(' ')?;
    if scheme.eq_ignore_ascii_case("bearer") {
        return Some(rest.trim().to_string());
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(rest.trim())
            .ok()?;
        let text = String::from_utf8(decoded).ok()?;
        let (_, password) = text.split_once(':')?;
        return Some(password.to_string());
    }
    None
}

/// The path of the repository `name` (`<site>.git`) if the request's token is that
/// site's own and the repository exists.
async fn authorised(
    state: &AppState,
    headers: &HeaderMap,
    name: &str,
) -> Result<std::path::PathBuf, Refusal> {
    let site = name.strip_suffix(".git").ok_or(Refusal::NotFound)?;
    let secret = presented_secret(headers).ok_or(Refusal::Unauthenticated)?;
    let token = state
        .store
        .authenticate_site(&hash_token(&secret), state.now())
        .await
        .map_err(|e| Refusal::Internal(e.to_string()))?
        .ok_or(Refusal::Unauthenticated)?;
    if token.site != site {
        tracing::warn!(site, token_site = %token.site, "a site's token asked for another site's desired state");
        return Err(Refusal::NotFound);
    }
    let publisher = state.publisher.as_ref().ok_or(Refusal::NotFound)?;
    let path = publisher.sites().path(site).ok_or(Refusal::NotFound)?;
    if !path.join("HEAD").is_file() {
        return Err(Refusal::NotFound);
    }
    Ok(path)
}

/// `git upload-pack` for one stateless request (or, with `advertise`, the refs
/// advertisement), with the client's protocol version.
fn upload_pack_command(path: &std::path::Path, headers: &HeaderMap, advertise: bool) -> Command {
    let mut command = Command::new("git");
    command
        .args([
            "upload-pack",
            "--strict",
            "--stateless-rpc",
            "--timeout=120",
        ])
        .args(advertise.then_some("--advertise-refs"))
        .env("GIT_TERMINAL_PROMPT", "0")
        .env_remove("GIT_DIR")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(protocol) = git_protocol(headers) {
        command.env("GIT_PROTOCOL", protocol);
    }
    command.arg(path);
    command
}

/// The `Git-Protocol` header, if it only names protocol parameters git knows.
fn git_protocol(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get("Git-Protocol")?.to_str().ok()?;
    value
        .split(':')
        .all(|part| part == "version=2" || part == "version=1" || part == "version=0")
        .then_some(value)
}

/// `GET /git/<site>.git/info/refs?service=git-upload-pack`: the refs advertisement.
async fn info_refs(
    State(state): State<AppState>,
    Path(repository): Path<String>,
    Query(service): Query<Service>,
    headers: HeaderMap,
) -> Result<Response, Refusal> {
    let path = authorised(&state, &headers, &repository).await?;
    match service.service.as_deref() {
        Some("git-upload-pack") => {}
        Some("git-receive-pack") => {
            return Err(Refusal::Forbidden(
                "the desired state is read-only: only verbund writes it",
            ))
        }
        _ => {
            return Err(Refusal::Forbidden(
                "only Git's smart HTTP protocol is served (git-upload-pack)",
            ))
        }
    }
    let mut command = upload_pack_command(&path, &headers, true);
    let output = command
        .output()
        .await
        .map_err(|e| Refusal::Internal(e.to_string()))?;
    if !output.status.success() {
        return Err(Refusal::Internal(
            String::from_utf8_lossy(&output.stderr).trim().to_string(),
        ));
    }
    let mut body = Vec::with_capacity(output.stdout.len() + 40);
    let v2 = git_protocol(&headers).is_some_and(|p| p.contains("version=2"));
    if !v2 {
        body.extend_from_slice(&pkt_line("# service=git-upload-pack\n"));
        body.extend_from_slice(b"0000");
    }
    body.extend_from_slice(&output.stdout);
    Ok((
        [
            (
                header::CONTENT_TYPE,
                "application/x-git-upload-pack-advertisement",
            ),
            (
                header::CACHE_CONTROL,
                "no-cache, max-age=0, must-revalidate",
            ),
        ],
        body,
    )
        .into_response())
}

/// One pkt-line: four hex digits of length (themselves included), then the data.
fn pkt_line(data: &str) -> Vec<u8> {
    let mut out = format!("{:04x}", data.len() + 4).into_bytes();
    out.extend_from_slice(data.as_bytes());
    out
}

/// `POST /git/<site>.git/git-upload-pack`: negotiation and the pack, streamed.
async fn upload_pack(
    State(state): State<AppState>,
    Path(repository): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Refusal> {
    let path = authorised(&state, &headers, &repository).await?;
    let request = match headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
    {
        Some("gzip" | "x-gzip") => {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(&body[..])
                .take(MAX_REQUEST_BYTES as u64 + 1)
                .read_to_end(&mut out)
                .map_err(|e| Refusal::BadRequest(format!("the request is not valid gzip: {e}")))?;
            out
        }
        None | Some("identity") => body.to_vec(),
        Some(other) => {
            return Err(Refusal::BadRequest(format!(
                "unsupported Content-Encoding `{other}`"
            )))
        }
    };
    if request.len() > MAX_REQUEST_BYTES {
        return Err(Refusal::BadRequest("the request is too large".into()));
    }
    let mut child = upload_pack_command(&path, &headers, false)
        .spawn()
        .map_err(|e| Refusal::Internal(e.to_string()))?;
    let mut stdin = child
        .stdin
        .take()
        .ok_or_else(|| Refusal::Internal("git upload-pack has no stdin".into()))?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| Refusal::Internal("git upload-pack has no stdout".into()))?;
    tokio::spawn(async move {
        // Written while the pack streams out, or a large request would block on a pipe.
        if let Err(e) = stdin.write_all(&request).await {
            tracing::debug!(error = %e, "git upload-pack stopped reading the request");
        }
        drop(stdin);
        match child.wait_with_output().await {
            Ok(out) if !out.status.success() => {
                tracing::warn!(stderr = %String::from_utf8_lossy(&out.stderr).trim(), "git upload-pack failed");
            }
            Err(e) => tracing::warn!(error = %e, "git upload-pack could not be awaited"),
            Ok(_) => {}
        }
    });
    let stream = tokio_util::io::ReaderStream::new(stdout);
    Ok((
        [
            (header::CONTENT_TYPE, "application/x-git-upload-pack-result"),
            (
                header::CACHE_CONTROL,
                "no-cache, max-age=0, must-revalidate",
            ),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}

/// `POST /git/<site>.git/git-receive-pack`: never.
async fn receive_pack() -> Refusal {
    Refusal::Forbidden("the desired state is read-only: only verbund writes it")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_read_from_basic_auth_or_a_bearer_token() {
        let mut headers = HeaderMap::new();
        let basic = base64::engine::general_purpose::STANDARD.encode("site:vbs_secret");
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Basic {basic}")).unwrap(),
        );
        assert_eq!(presented_secret(&headers).as_deref(), Some("vbs_secret"));
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("bearer vbs_other"),
        );
        assert_eq!(presented_secret(&headers).as_deref(), Some("vbs_other"));
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic !!!"));
        assert_eq!(presented_secret(&headers), None);
    }

    #[test]
    fn pkt_lines_count_their_own_length() {
        assert_eq!(
            pkt_line("# service=git-upload-pack\n"),
            b"001e# service=git-upload-pack\n"
        );
    }

    #[test]
    fn only_known_protocol_parameters_pass() {
        let mut headers = HeaderMap::new();
        headers.insert("Git-Protocol", HeaderValue::from_static("version=2"));
        assert_eq!(git_protocol(&headers), Some("version=2"));
        headers.insert(
            "Git-Protocol",
            HeaderValue::from_static("version=2:x=$(rm)"),
        );
        assert_eq!(git_protocol(&headers), None);
    }
}
