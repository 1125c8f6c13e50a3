//! The Kubernetes API as a scheduled discovery source: `mandate_service::discovery`'s
//! [`Fetch`] port over HTTPS, here because the service speaks no HTTP. Each run GETs
//! `/api/v1/pods?labelSelector=…` and `/api/v1/serviceaccounts?labelSelector=…` with
//! `Authorization: Bearer <token>` (the token file read at each run: service-account
//! tokens rotate) and hands the two `PodList`/`ServiceAccountList` documents to the run.
//!
//! - TLS is `mandate-tls`'s client (rustls + ring): the `ca_file` bundle instead of the
//!   system's roots when given (in-cluster: the service account's `ca.crt`); no setting
//!   turns a certificate check off.
//! - `http://` is refused, except to a loopback address (a `kubectl proxy` on the node).
//! - Each answer is bounded by `MAX_INPUT_BYTES` (64 MiB) and a time limit; a non-2xx
//!   answer is an error naming its status, never its body.
//!
//! Everything an operator can get wrong (URL, token file, CA bundle, selector) is checked
//! by [`KubeApi::new`], at start.

use std::path::{Path, PathBuf};
use std::time::Duration;

use axum::body::Bytes;
use http_body_util::{BodyExt as _, Empty, Limited};
use hyper_util::rt::TokioIo;
use mandate_service::discovery::{Fetch, FetchError, Fetching, MAX_INPUT_BYTES, Selector};
use reqwest::Url;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

/// How long connecting (TCP and TLS) may take.
const CONNECT: Duration = Duration::from_secs(10);
/// How long one answer may take, whole.
const ANSWER: Duration = Duration::from_secs(120);
/// The largest token file read.
const MAX_TOKEN_BYTES: u64 = 64 * 1024;

/// A Kubernetes API server to list pods and service accounts from.
#[derive(Debug, Clone)]
pub struct KubeApi {
    host: String,
    port: u16,
    /// `None`: plain HTTP (loopback only).
    tls: Option<mandate_tls::Client>,
    token_file: PathBuf,
    /// `?labelSelector=…`, or empty.
    query: String,
}

fn fetch_error(code: &'static str, message: impl Into<String>) -> FetchError {
    FetchError {
        code,
        message: message.into(),
    }
}

/// The token in `path`: at most 64 KiB, trimmed, non-empty, no control character.
fn read_token(path: &Path) -> Result<String, FetchError> {
    use std::io::Read as _;
    let bad = |what: String| {
        fetch_error(
            "unreadable",
            format!("`token_file` {}: {what}", path.display()),
        )
    };
    let f = std::fs::File::open(path).map_err(|e| bad(e.to_string()))?;
    let mut text = String::new();
    f.take(MAX_TOKEN_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(|e| bad(e.to_string()))?;
    let token = text.trim();
    if u64::try_from(text.len()).unwrap_or(u64::MAX) > MAX_TOKEN_BYTES {
        return Err(bad("over 64 KiB".into()));
    }
    if token.is_empty() || token.chars().any(|c| c.is_control() || c == ' ') {
        return Err(bad("empty, or not one token".into()));
    }
    Ok(token.to_owned())
}

impl KubeApi {
    /// The API server at `url` (`https://host[:port]`, or `http://` to a loopback
    /// address), authenticated by the token in `token_file`, its certificate checked
    /// against `ca_file` (else the system's roots), listing what `selector` selects.
    /// Reads the token and CA files now: a missing or bad one is an error at start.
    pub fn new(
        url: &str,
        token_file: &Path,
        ca_file: Option<&Path>,
        selector: &Selector,
    ) -> Result<Self, String> {
        let u = Url::parse(url).map_err(|e| format!("`kubernetes_api` `{url}`: {e}"))?;
        let host = u
            .host_str()
            .ok_or_else(|| format!("`kubernetes_api` `{url}`: no host"))?
            .to_owned();
        if !u.username().is_empty() || u.password().is_some() {
            return Err(format!(
                "`kubernetes_api` `{url}`: credentials go in `token_file`, not the URL"
            ));
        }
        if !matches!(u.path(), "" | "/") || u.query().is_some() || u.fragment().is_some() {
            return Err(format!(
                "`kubernetes_api` `{url}`: give the server's address only (no path or query)"
            ));
        }
        let tls = match u.scheme() {
            "https" => Some(
                mandate_tls::Client::new(&mandate_tls::Settings {
                    ca_file: ca_file.map(Path::to_path_buf),
                    ..mandate_tls::Settings::default()
                })
                .map_err(|e| format!("`kubernetes_api` `{url}`: {e}"))?,
            ),
            "http" if is_loopback(&host) => {
                if ca_file.is_some() {
                    return Err(format!(
                        "`kubernetes_api` `{url}`: `ca_file` needs an https:// URL"
                    ));
                }
                None
            }
            "http" => {
                return Err(format!(
                    "`kubernetes_api` `{url}`: http:// is refused except to a loopback address; use https://"
                ));
            }
            other => {
                return Err(format!(
                    "`kubernetes_api` `{url}`: scheme `{other}` is not https"
                ));
            }
        };
        let port = u
            .port_or_known_default()
            .ok_or_else(|| format!("`kubernetes_api` `{url}`: no port"))?;
        read_token(token_file).map_err(|e| e.message)?;
        let sel = selector.to_string();
        let query = if sel.is_empty() {
            String::new()
        } else {
            format!(
                "?labelSelector={}",
                form_urlencoded::byte_serialize(sel.as_bytes()).collect::<String>()
            )
        };
        Ok(Self {
            host,
            port,
            tls,
            token_file: token_file.to_path_buf(),
            query,
        })
    }

    /// One GET of `path` (with the selector), its body bounded.
    async fn get(&self, path: &str) -> Result<Vec<u8>, FetchError> {
        let token = read_token(&self.token_file)?;
        let unreachable =
            |e: String| fetch_error("unreachable", format!("{}:{}: {e}", self.host, self.port));
        // An IPv6 host is `[::1]` in the URL and the `Host` header, bare to connect.
        let bare = self.host.trim_start_matches('[').trim_end_matches(']');
        let tcp = tokio::time::timeout(CONNECT, TcpStream::connect((bare, self.port)))
            .await
            .map_err(|_| unreachable("connect timed out".into()))?
            .map_err(|e| unreachable(e.to_string()))?;
        let authority = if (self.tls.is_some() && self.port == 443)
            || (self.tls.is_none() && self.port == 80)
        {
            self.host.clone()
        } else {
            format!("{}:{}", self.host, self.port)
        };
        let req = hyper::Request::get(format!("{path}{}", self.query))
            .header(hyper::header::HOST, authority)
            .header(hyper::header::AUTHORIZATION, format!("Bearer {token}"))
            .header(hyper::header::ACCEPT, "application/json")
            .body(Empty::<Bytes>::new())
            .map_err(|e| fetch_error("unreachable", e.to_string()))?;
        match &self.tls {
            None => exchange(tcp, req, path).await,
            Some(tls) => {
                let stream = tokio::time::timeout(CONNECT, tls.connect(bare, tcp))
                    .await
                    .map_err(|_| fetch_error("tls", "TLS handshake timed out"))?
                    .map_err(|e| fetch_error("tls", format!("{}:{}: {e}", self.host, self.port)))?;
                exchange(stream, req, path).await
            }
        }
    }
}

/// Whether `host` is a loopback address (or `localhost`).
fn is_loopback(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    bare == "localhost"
        || bare
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Sends `req` over `io` (HTTP/1.1) and reads a 2xx answer's body, at most
/// `MAX_INPUT_BYTES`, within [`ANSWER`].
async fn exchange<IO>(
    io: IO,
    req: hyper::Request<Empty<Bytes>>,
    path: &str,
) -> Result<Vec<u8>, FetchError>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let failed = |e: String| fetch_error("unreachable", format!("GET {path}: {e}"));
    let work = async {
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
            .await
            .map_err(|e| failed(e.to_string()))?;
        let conn = tokio::spawn(conn);
        let res = sender
            .send_request(req)
            .await
            .map_err(|e| failed(e.to_string()))?;
        let status = res.status();
        if !status.is_success() {
            conn.abort();
            return Err(fetch_error(
                "http_status",
                format!("GET {path}: the API server answered {status}"),
            ));
        }
        let body = Limited::new(res.into_body(), MAX_INPUT_BYTES)
            .collect()
            .await
            .map_err(|e| {
                if e.is::<http_body_util::LengthLimitError>() {
                    fetch_error(
                        "too_large",
                        format!("GET {path}: over {MAX_INPUT_BYTES} bytes"),
                    )
                } else {
                    failed(e.to_string())
                }
            })?;
        conn.abort();
        Ok(body.to_bytes().to_vec())
    };
    tokio::time::timeout(ANSWER, work)
        .await
        .map_err(|_| failed(format!("no whole answer within {ANSWER:?}")))?
}

impl Fetch for KubeApi {
    fn fetch(&self) -> Fetching<'_> {
        Box::pin(async move {
            let pods = self.get("/api/v1/pods").await?;
            let accounts = self.get("/api/v1/serviceaccounts").await?;
            Ok(vec![pods, accounts])
        })
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    use super::*;

    /// A plain-HTTP API server on loopback (as `kubectl proxy` is) answering each
    /// connection with `status` and `body_len` bytes of `body` repeated; the request
    /// targets it saw.
    async fn server(
        host: &str,
        status: &'static str,
        body: &'static [u8],
        body_len: usize,
    ) -> Option<(u16, tokio::sync::mpsc::UnboundedReceiver<String>)> {
        let listener = tokio::net::TcpListener::bind((host, 0)).await.ok()?;
        let port = listener.local_addr().unwrap().port();
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((mut c, _)) = listener.accept().await {
                let tx = tx.clone();
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match c.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    let text = String::from_utf8_lossy(&head).into_owned();
                    let _ = tx.send(text.lines().next().unwrap_or("").to_owned());
                    let head = format!(
                        "HTTP/1.1 {status}\r\nContent-Length: {body_len}\r\nConnection: close\r\n\r\n"
                    );
                    if c.write_all(head.as_bytes()).await.is_err() {
                        return;
                    }
                    let mut left = body_len;
                    while left > 0 {
                        let n = left.min(body.len());
                        if c.write_all(&body[..n]).await.is_err() {
                            return;
                        }
                        left -= n;
                    }
                });
            }
        });
        Some((port, rx))
    }

    #[tokio::test]
    async fn a_loopback_api_is_read_with_the_selector_and_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("token");
        std::fs::write(&token, "abc\n").unwrap();
        let sel = Selector::parse("app=ai-agent,!skip").unwrap();
        let doc: &'static [u8] = br#"{"kind":"PodList","items":[]}"#;
        for host in ["127.0.0.1", "::1"] {
            let Some((port, mut seen)) = server(host, "200 OK", doc, doc.len()).await else {
                continue; // no IPv6 loopback here
            };
            let url = if host.contains(':') {
                format!("http://[{host}]:{port}")
            } else {
                format!("http://{host}:{port}")
            };
            let api = KubeApi::new(&url, &token, None, &sel).unwrap();
            let docs = api.fetch().await.unwrap();
            assert_eq!(docs, [doc.to_vec(), doc.to_vec()]);
            assert_eq!(
                seen.recv().await.unwrap(),
                "GET /api/v1/pods?labelSelector=app%3Dai-agent%2C%21skip HTTP/1.1"
            );
            assert!(
                seen.recv()
                    .await
                    .unwrap()
                    .starts_with("GET /api/v1/serviceaccounts?")
            );
        }
        let (port, _) = server("127.0.0.1", "403 Forbidden", b"{}", 2)
            .await
            .unwrap();
        let api = KubeApi::new(&format!("http://127.0.0.1:{port}"), &token, None, &sel).unwrap();
        let e = api.fetch().await.unwrap_err();
        assert_eq!(e.code, "http_status", "{e}");
        assert!(e.message.contains("403"), "{e}");
        // One byte past 64 MiB: refused, not read whole.
        let (port, _) = server("127.0.0.1", "200 OK", &[b' '; 65536], MAX_INPUT_BYTES + 1)
            .await
            .unwrap();
        let api = KubeApi::new(&format!("http://127.0.0.1:{port}"), &token, None, &sel).unwrap();
        let e = api.fetch().await.unwrap_err();
        assert_eq!(e.code, "too_large", "{e}");
        // Nothing listening.
        let api = KubeApi::new("http://127.0.0.1:1", &token, None, &sel).unwrap();
        assert_eq!(api.fetch().await.unwrap_err().code, "unreachable");
    }

    #[test]
    fn urls_are_checked_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("token");
        std::fs::write(&token, "abc.def\n").unwrap();
        let sel = Selector::kubernetes_default();
        let new = |url: &str| KubeApi::new(url, &token, None, &sel);
        assert!(new("http://127.0.0.1:8001").is_ok());
        assert!(new("http://[::1]:8001").is_ok());
        assert!(new("https://kubernetes.default.svc").is_ok());
        for bad in [
            "http://10.0.0.1:6443",
            "ftp://127.0.0.1",
            "https://user:pw@k8s.example",
            "https://k8s.example/api",
            "not a url",
        ] {
            assert!(new(bad).is_err(), "{bad}");
        }
        let api = new("http://localhost:8001").unwrap();
        assert_eq!(api.query, "?labelSelector=app%3Dai-agent");
        std::fs::write(&token, " \n").unwrap();
        assert!(new("http://127.0.0.1:8001").is_err());
        assert!(
            KubeApi::new(
                "https://k8s.example",
                &token,
                Some(Path::new("/nonexistent")),
                &sel
            )
            .is_err()
        );
    }
}
