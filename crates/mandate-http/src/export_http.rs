//! The HTTP export sinks (issue 23): a signed JSON Lines webhook, Splunk's HTTP Event
//! Collector (HEC, with optional indexer acknowledgement) and Elasticsearch/OpenSearch
//! `_bulk`, as [`Transport`]s for `mandate_service::export`'s delivery loop. They live at
//! the HTTP edge because the service layer speaks no HTTP.
//!
//! Each `send` answers `Ok` only when the receiver took the whole batch (a 2xx from the
//! webhook; HEC's `{"code":0}`, and with `ack = true` the indexers' acknowledgement; a
//! `_bulk` answer with no item refused). Anything else is a [`SendError`] saying what the
//! receiver answered, never a secret; the delivery loop sends the batch again, whole,
//! after a back-off, so a receiver that keeps refusing stalls its sink, visibly.
//!
//! The workspace's `reqwest` is built without TLS: an `https://` URL fails at send time
//! (each attempt says so in `mandate export status`). TLS out is issue 25; until then,
//! reach an HTTPS receiver through a local TLS proxy.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use mandate_core::clock::Clock;
use mandate_core::random::{OsRandom, Random, random_bytes};
use mandate_export::ascii_json;
use mandate_service::export::{Item, SendError, Sending, SinkConfig, SinkKind, Transport};
use reqwest::{StatusCode, Url};
use serde_json::{Map, Value, json};

use crate::webhook::{SIGNATURE_HEADER, signature};

/// The index of an `elasticsearch` sink unless configured.
pub const DEFAULT_INDEX: &str = "mandate-audit";

/// The shortest webhook secret accepted, as for Mandate's other webhooks.
pub const MIN_SECRET_LEN: usize = 24;

/// How much of a refusing receiver's answer a [`SendError`] quotes.
const EXCERPT_CHARS: usize = 200;

/// The longest answer read from a receiver: 32 MiB, several times a `_bulk` answer
/// for a batch of 10,000 events that all failed (about 500 bytes an item).
pub const MAX_ANSWER_BYTES: usize = 32 * 1024 * 1024;

/// The waits of the HTTP sinks.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// The longest a request (connect, send, answer) may take: a slow receiver fails the
    /// batch, to be sent again, rather than hold the sink forever.
    pub request: Duration,
    /// Splunk with `ack = true`: the wait between two queries of the acknowledgement.
    pub ack_poll: Duration,
    /// Splunk with `ack = true`: how long a batch may stay unacknowledged before it
    /// fails, to be sent again (at least once: a batch indexed late arrives twice,
    /// under the same event ids).
    pub ack_limit: Duration,
}

impl Timing {
    /// 30 s per request; acknowledgement polled every 250 ms for up to 60 s.
    pub const DEFAULT: Self = Self {
        request: Duration::from_secs(30),
        ack_poll: Duration::from_millis(250),
        ack_limit: Duration::from_secs(60),
    };
}

/// A secret read from its file: the webhook's HMAC key, the HEC token, the
/// Elasticsearch API key. Its `Debug` never shows it, and no error message holds it.
struct Secret(String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// The credentials a sink sends (its token, and a URL's password and query values), to
/// be hidden in what a receiver answers: a receiver or proxy that echoes the request in
/// a refusal (`401 Unauthorized: POST … authorization: Splunk <token>`) would otherwise
/// put them in `mandate export status`, which any admin role reads.
#[derive(Clone, Default)]
struct Hidden(Vec<String>);

impl fmt::Debug for Hidden {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<{} hidden>", self.0.len())
    }
}

impl Hidden {
    /// What `url` and `secret` carry that must not be shown.
    fn of(url: &Url, secret: Option<&Secret>) -> Self {
        use base64::Engine as _;
        let mut out: Vec<String> = secret.map(|s| s.0.clone()).into_iter().collect();
        if let Some(pw) = url.password() {
            out.push(pw.to_owned());
            let decoded = percent_decode(pw);
            let user = percent_decode(url.username());
            out.push(base64::engine::general_purpose::STANDARD.encode(format!("{user}:{decoded}")));
            out.push(decoded);
        }
        for (_, v) in url.query_pairs() {
            out.push(v.into_owned());
        }
        if let Some(q) = url.query() {
            out.extend(
                q.split('&')
                    .filter_map(|kv| kv.split_once('='))
                    .map(|(_, v)| v.to_owned()),
            );
        }
        // Short values would hide ordinary words; longest first, so a secret holding
        // another is hidden whole.
        out.retain(|v| v.len() >= 4);
        out.sort_by_key(|v| std::cmp::Reverse(v.len()));
        out.dedup();
        Self(out)
    }

    /// `e` with every hidden value replaced by `<redacted>`.
    fn scrub(&self, mut e: SendError) -> SendError {
        for v in &self.0 {
            if e.message.contains(v.as_str()) {
                e.message = e.message.replace(v.as_str(), "<redacted>");
            }
        }
        e
    }
}

/// `text` with its `%XX` escapes decoded (lossily), as a URL's user-info is sent.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (b, hex) {
            (b'%', Some(x)) => {
                out.push(x);
                i += 3;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The transport of a `webhook`, `splunk` or `elasticsearch` sink (`None` for the other
/// kinds), with [`Timing::DEFAULT`]. Reads the secret and token files once, here; an
/// error names the sink and the file, never the file's content.
pub fn transport(
    cfg: &SinkConfig,
    clock: Arc<dyn Clock>,
) -> Result<Option<Box<dyn Transport>>, String> {
    transport_timed(cfg, clock, Timing::DEFAULT)
}

/// [`transport`] with the waits given (tests shorten them).
pub fn transport_timed(
    cfg: &SinkConfig,
    clock: Arc<dyn Clock>,
    timing: Timing,
) -> Result<Option<Box<dyn Transport>>, String> {
    let name = &cfg.name;
    let client = || http_client(name, timing, &cfg.tls());
    match cfg.kind {
        // An `ssf` sink signs with the node's keys: `ssf_transport`.
        SinkKind::File | SinkKind::Syslog | SinkKind::Ssf => Ok(None),
        SinkKind::Webhook => {
            let url = parse_url(name, cfg.url.as_deref())?;
            let secret = read_secret(name, "secret_file", cfg.secret_file.as_deref())?;
            if secret.0.len() < MIN_SECRET_LEN {
                return Err(format!(
                    "export sink `{name}`: the secret in `secret_file` must be at least \
                     {MIN_SECRET_LEN} characters"
                ));
            }
            Ok(Some(Box::new(Webhook {
                client: client()?,
                hidden: Hidden::of(&url, Some(&secret)),
                url,
                secret,
                clock,
            })))
        }
        SinkKind::Splunk => {
            let url = parse_url(name, cfg.url.as_deref())?;
            let token = read_secret(name, "token_file", cfg.token_file.as_deref())?;
            // The OS source directly: a channel only has to be unique, and no test needs
            // to predict it.
            let channel = new_channel(&OsRandom)
                .map_err(|e| format!("export sink `{name}`: a channel id: {e}"))?;
            let ack_url = ack_url(&url, &channel);
            Ok(Some(Box::new(Splunk {
                client: client()?,
                hidden: Hidden::of(&url, Some(&token)),
                url,
                ack_url,
                token,
                channel,
                index: cfg.index.clone(),
                sourcetype: format!("mandate:{}", cfg.format().name()),
                ack: cfg.ack.unwrap_or(false),
                timing,
            })))
        }
        SinkKind::Elasticsearch => {
            let url = parse_url(name, cfg.url.as_deref())?;
            let token = match cfg.token_file.as_deref() {
                Some(f) => Some(read_secret(name, "token_file", Some(f))?),
                None => None,
            };
            Ok(Some(Box::new(Elastic {
                client: client()?,
                hidden: Hidden::of(&url, token.as_ref()),
                bulk_url: bulk_url(&url),
                token,
                index: cfg
                    .index
                    .clone()
                    .unwrap_or_else(|| DEFAULT_INDEX.to_owned()),
            })))
        }
    }
}

/// The HTTP client of sink `name`: every request limited to `timing.request` (connect
/// included, at most 10 s of it), so a receiver that hangs fails the batch.
fn http_client(
    name: &str,
    timing: Timing,
    tls: &mandate_egress::Settings,
) -> Result<reqwest::Client, String> {
    mandate_egress::builder(tls)
        .map_err(|e| format!("export sink `{name}`: {e}"))?
        .no_proxy()
        .timeout(timing.request)
        .connect_timeout(timing.request.min(Duration::from_secs(10)))
        .build()
        .map_err(|e| format!("export sink `{name}`: the HTTP client: {e}"))
}

/// Why a push stream's `endpoint_url` is not one its sender ([`StreamPush`]) can post
/// to, if it is not: checked when a receiver sets it, so a stream that could never
/// deliver is refused (400) rather than accepted and left silent.
pub(crate) fn push_url_error(url: &str) -> Option<String> {
    parse_url("endpoint_url", Some(url)).err().map(|_| {
        format!(
            "`delivery.endpoint_url` `{}` is not an http or https URL with a valid host and port",
            url.escape_debug()
        )
    })
}

fn parse_url(name: &str, url: Option<&str>) -> Result<Url, String> {
    let text = url.ok_or_else(|| format!("export sink `{name}`: `url` is required"))?;
    let url =
        Url::parse(text).map_err(|e| format!("export sink `{name}`: `url` is not a URL ({e})"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(format!(
            "export sink `{name}`: `url` must be an http:// or https:// URL with a host"
        ));
    }
    Ok(url)
}

/// The trimmed content of `file`; an error when it cannot be read or is empty.
fn read_secret(name: &str, key: &str, file: Option<&std::path::Path>) -> Result<Secret, String> {
    let file = file.ok_or_else(|| format!("export sink `{name}`: `{key}` is required"))?;
    let text = std::fs::read_to_string(file).map_err(|e| {
        format!(
            "export sink `{name}`: reading `{key}` {}: {e}",
            file.display()
        )
    })?;
    let text = text.trim();
    if text.is_empty() {
        return Err(format!(
            "export sink `{name}`: `{key}` {} is empty",
            file.display()
        ));
    }
    Ok(Secret(text.to_owned()))
}

/// A random (version 4) UUID: the HEC channel of one sink for the life of the process.
fn new_channel(random: &dyn Random) -> Result<String, mandate_core::random::RandomError> {
    let mut b: [u8; 16] = random_bytes(random)?;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    let part = |r: std::ops::Range<usize>| hex.get(r).unwrap_or_default().to_owned();
    Ok(format!(
        "{}-{}-{}-{}-{}",
        part(0..8),
        part(8..12),
        part(12..16),
        part(16..20),
        part(20..32)
    ))
}

/// `url` as an error message shows it: scheme, host, port and path, without any
/// user-info or query (either may hold a credential).
fn shown(url: &Url) -> String {
    let host = url.host_str().unwrap_or_default();
    match url.port() {
        Some(p) => format!("{}://{host}:{p}{}", url.scheme(), url.path()),
        None => format!("{}://{host}{}", url.scheme(), url.path()),
    }
}

/// A request that got no answer, with its causes (connection refused, timed out, …):
/// reqwest's own text stops at the first layer, the root cause is what helps. The URL
/// is left out of reqwest's text (it is [`shown`] instead).
fn network(url: &Url, e: reqwest::Error) -> SendError {
    let e = e.without_url();
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    SendError::new(format!("posting to {}: {text}", shown(url)))
}

/// The first [`EXCERPT_CHARS`] characters of an answer's body, on one line.
fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let mut out: String = text
        .chars()
        .take(EXCERPT_CHARS)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if text.chars().count() > EXCERPT_CHARS {
        out.push('…');
    }
    out.trim().to_owned()
}

/// An answer read whole, up to [`MAX_ANSWER_BYTES`]: its status and body. A longer
/// answer fails the batch (to be sent again) as soon as it passes the limit, so a
/// receiver that answers without end cannot make Mandate hold its answer in memory.
async fn read(
    url: &Url,
    sent: reqwest::RequestBuilder,
) -> Result<(StatusCode, Vec<u8>), SendError> {
    let mut res = sent.send().await.map_err(|e| network(url, e))?;
    let status = res.status();
    let too_long = || {
        SendError::new(format!(
            "{} answered {status} with more than {MAX_ANSWER_BYTES} bytes",
            shown(url)
        ))
    };
    if res
        .content_length()
        .is_some_and(|n| n > MAX_ANSWER_BYTES as u64)
    {
        return Err(too_long());
    }
    let mut body = Vec::new();
    while let Some(chunk) = res.chunk().await.map_err(|e| network(url, e))? {
        if body.len().saturating_add(chunk.len()) > MAX_ANSWER_BYTES {
            return Err(too_long());
        }
        body.extend_from_slice(&chunk);
    }
    Ok((status, body))
}

// ---- webhook ----

/// JSON Lines batches POSTed to a URL (`Content-Type: application/x-ndjson`), signed as
/// Mandate's other webhooks are (`Mandate-Signature: t=<unix seconds>,v1=<hex
/// HMAC-SHA256(secret, "<t>.<body>")>`, [`crate::webhook`]): the receiver checks the
/// HMAC over the exact bytes it received. Any 2xx accepts the batch.
struct Webhook {
    client: reqwest::Client,
    hidden: Hidden,
    url: Url,
    secret: Secret,
    clock: Arc<dyn Clock>,
}

impl fmt::Debug for Webhook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Webhook")
            .field("url", &shown(&self.url))
            .field("secret", &self.secret)
            .finish_non_exhaustive()
    }
}

impl Transport for Webhook {
    fn send<'a>(&'a mut self, batch: &'a [Item]) -> Sending<'a> {
        Box::pin(async move {
            let hidden = self.hidden.clone();
            let sent: Result<(), SendError> = async {
                let mut body = String::new();
                for item in batch {
                    body.push_str(&item.json);
                    body.push('\n');
                }
                let t = self.clock.now().secs();
                let sig = signature(self.secret.0.as_bytes(), t, body.as_bytes());
                let request = self
                    .client
                    .post(self.url.clone())
                    .header("content-type", "application/x-ndjson")
                    .header(SIGNATURE_HEADER, sig)
                    .body(body);
                let (status, answer) = read(&self.url, request).await?;
                if status.is_success() {
                    return Ok(());
                }
                Err(SendError::new(format!(
                    "the webhook {} answered {status}: {}",
                    shown(&self.url),
                    excerpt(&answer)
                )))
            }
            .await;
            sent.map_err(|e| hidden.scrub(e))
        })
    }
}

// ---- Splunk HEC ----

/// Splunk's HTTP Event Collector, `/services/collector/event` (the operator's `url`),
/// `Authorization: Splunk <token>`: one JSON object per event, concatenated,
/// `{"time", "host", "source": "mandate", "sourcetype": "mandate:<format>", "index"?,
/// "event": <record>}`.
///
/// What HEC answers (Splunk, "Troubleshoot HTTP Event Collector", its table of status
/// codes, https://docs.splunk.com/Documentation/Splunk/latest/Data/TroubleshootHTTPEventCollector):
/// `200 {"text":"Success","code":0}` accepts the batch; `503 {"text":"Server is
/// busy","code":9}` is back-pressure; `401` codes 2/3 (token missing, bad
/// `Authorization`), `403` codes 1/4 (token disabled, invalid), `400` codes 5/6/7 (no
/// data, invalid data format, incorrect index), 10/11 (channel missing, invalid), 14
/// (acknowledgement disabled). Every refusal fails the batch with HEC's code and text;
/// the delivery loop retries it, so a busy indexer only delays delivery and a wrong token
/// stalls the sink until it is fixed.
///
/// Indexer acknowledgement (`ack = true`; Splunk, "About HTTP Event Collector Indexer
/// Acknowledgment",
/// https://help.splunk.com/splunk-enterprise/get-data-in/collect-http-event-data/about-http-event-collector-indexer-acknowledgment):
/// a 200 only says the data looked valid, before it entered the indexing pipeline. With
/// acknowledgement enabled on the token, each request carries a channel
/// (`X-Splunk-Request-Channel: <UUID>`, one per sink, made here; sent with `ack = false`
/// too, as HEC accepts a channel either way), the 200 carries an
/// `ackId`, and the client POSTs `{"acks":[id]}` to `/services/collector/ack?channel=…`
/// until the answer maps the id to `true` (`{"acks":{"<id>":true}}`). Only then is the
/// batch accepted; unacknowledged after [`Timing::ack_limit`], it fails and is sent
/// again (duplicates carry the same event id).
struct Splunk {
    client: reqwest::Client,
    hidden: Hidden,
    url: Url,
    ack_url: Url,
    token: Secret,
    channel: String,
    index: Option<String>,
    sourcetype: String,
    ack: bool,
    timing: Timing,
}

impl fmt::Debug for Splunk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Splunk")
            .field("url", &shown(&self.url))
            .field("token", &self.token)
            .field("channel", &self.channel)
            .field("index", &self.index)
            .field("sourcetype", &self.sourcetype)
            .field("ack", &self.ack)
            .finish_non_exhaustive()
    }
}

/// The acknowledgement endpoint beside the event endpoint: the same scheme, host, port
/// (and any path prefix before `/services/collector`), `/services/collector/ack`.
fn ack_url(url: &Url, channel: &str) -> Url {
    let mut out = url.clone();
    let prefix = url
        .path()
        .find("/services/collector")
        .and_then(|at| url.path().get(..at))
        .unwrap_or("")
        .to_owned();
    out.set_path(&format!("{prefix}/services/collector/ack"));
    out.set_query(None);
    out.query_pairs_mut().append_pair("channel", channel);
    out
}

impl Splunk {
    /// The HEC body: one object per event.
    fn body(&self, batch: &[Item]) -> String {
        let mut body = String::new();
        for item in batch {
            let mut m = Map::new();
            m.insert("time".into(), item.event.time.secs().into());
            m.insert("host".into(), item.event.node.as_str().into());
            m.insert("source".into(), "mandate".into());
            m.insert("sourcetype".into(), self.sourcetype.clone().into());
            if let Some(index) = &self.index {
                m.insert("index".into(), index.clone().into());
            }
            m.insert("event".into(), item.record.clone());
            body.push_str(&ascii_json(&Value::Object(m)));
            body.push('\n');
        }
        body
    }

    fn post(&self, url: &Url, body: String) -> reqwest::RequestBuilder {
        self.client
            .post(url.clone())
            .header("authorization", format!("Splunk {}", self.token.0))
            .header("x-splunk-request-channel", &self.channel)
            .header("content-type", "application/json")
            .body(body)
    }

    /// HEC's refusal as a [`SendError`]: its status, code and text.
    fn refused(&self, status: StatusCode, body: &[u8]) -> SendError {
        let said = hec_reply(body);
        let what = match said {
            Some((code, text)) => format!("code {code}: {text}"),
            None => excerpt(body),
        };
        SendError::new(format!(
            "Splunk HEC {} answered {status} ({what})",
            shown(&self.url)
        ))
    }

    /// Polls the acknowledgement of `ack_id` until the indexers confirm it or
    /// [`Timing::ack_limit`] passes.
    async fn acknowledged(&self, ack_id: u64) -> Result<(), SendError> {
        let polls =
            (self.timing.ack_limit.as_millis() / self.timing.ack_poll.as_millis().max(1)).max(1);
        let query = json!({ "acks": [ack_id] }).to_string();
        let key = ack_id.to_string();
        let mut last = String::from("not yet indexed");
        for n in 0..polls {
            if n > 0 {
                tokio::time::sleep(self.timing.ack_poll).await;
            }
            let answer = read(&self.ack_url, self.post(&self.ack_url, query.clone())).await;
            match answer {
                Ok((status, body)) if status == StatusCode::OK => {
                    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                    match v
                        .get("acks")
                        .and_then(|a| a.get(&key))
                        .and_then(Value::as_bool)
                    {
                        Some(true) => return Ok(()),
                        Some(false) => last = String::from("not yet indexed"),
                        None => {
                            last = format!("an unexpected answer: {}", excerpt(&body));
                        }
                    }
                }
                Ok((status, body)) if status.is_client_error() => {
                    // A refused query (a token without acknowledgement, a bad channel)
                    // will not change by asking again.
                    return Err(SendError::new(format!(
                        "querying the acknowledgement of ackId {ack_id}: {}",
                        self.refused(status, &body).message
                    )));
                }
                Ok((status, body)) => {
                    last = format!("{status} ({})", excerpt(&body));
                }
                Err(e) => last = e.message,
            }
        }
        Err(SendError::new(format!(
            "Splunk HEC {}: ackId {ack_id} not acknowledged within {} ms ({last}); the batch \
             is sent again",
            shown(&self.url),
            self.timing.ack_limit.as_millis()
        )))
    }
}

/// HEC's `{"text": …, "code": …}`.
fn hec_reply(body: &[u8]) -> Option<(i64, String)> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let code = v.get("code")?.as_i64()?;
    let text = v
        .get("text")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .chars()
        .take(EXCERPT_CHARS)
        .collect();
    Some((code, text))
}

impl Transport for Splunk {
    fn send<'a>(&'a mut self, batch: &'a [Item]) -> Sending<'a> {
        Box::pin(async move {
            let hidden = self.hidden.clone();
            let sent: Result<(), SendError> = async {
                let body = self.body(batch);
                let (status, answer) = read(&self.url, self.post(&self.url, body)).await?;
                if status != StatusCode::OK || hec_reply(&answer).is_none_or(|(code, _)| code != 0)
                {
                    return Err(self.refused(status, &answer));
                }
                if !self.ack {
                    return Ok(());
                }
                let ack_id = serde_json::from_slice::<Value>(&answer)
                    .ok()
                    .and_then(|v| v.get("ackId").and_then(Value::as_u64));
                match ack_id {
                    Some(id) => self.acknowledged(id).await,
                    None => Err(SendError::new(format!(
                        "Splunk HEC {} accepted the batch without an ackId: enable indexer \
                         acknowledgement on the token, or set `ack = false`",
                        shown(&self.url)
                    ))),
                }
            }
            .await;
            sent.map_err(|e| hidden.scrub(e))
        })
    }
}

// ---- Elasticsearch / OpenSearch ----

/// Elasticsearch or OpenSearch `_bulk` (`<url>/_bulk`, `Content-Type:
/// application/x-ndjson`, `Authorization: ApiKey <token>` when `token_file` is set):
/// per event, `{"create":{"_index":…,"_id":"<node>:<seq>"}}` and the record, each on its
/// own line.
///
/// `create` with the event's id makes a resend idempotent: unlike `index`, `create` fails
/// for an id the index already holds (Elastic, "Bulk API",
/// https://www.elastic.co/guide/en/elasticsearch/reference/7.4/docs-bulk.html: `create`
/// has the `op_type=create` semantics of the index API), with the item status 409
/// (`version_conflict_engine_exception`), which counts as delivered: an earlier attempt
/// indexed it. One failed action does not stop the others; the answer gives each
/// action's status, in the order sent.
///
/// What `_bulk` answers: a whole-request 429 or 5xx (back-pressure, an unavailable
/// cluster) fails the batch; a 200 with `"errors": false` accepts it; with `"errors":
/// true`, each `items[]` entry has its own `status`: 2xx and 409 are delivered, 429 and
/// 5xx (`es_rejected_execution_exception`, a shard unavailable) fail the batch (resent
/// whole, safe since creates are idempotent), and any other 4xx (a mapping error) fails
/// it naming the first item's error type and reason: the sink stalls until the mapping
/// or the index is fixed; nothing is dropped.
struct Elastic {
    client: reqwest::Client,
    hidden: Hidden,
    bulk_url: Url,
    token: Option<Secret>,
    index: String,
}

impl fmt::Debug for Elastic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Elastic")
            .field("bulk_url", &shown(&self.bulk_url))
            .field("token", &self.token)
            .field("index", &self.index)
            .finish_non_exhaustive()
    }
}

/// `<url>/_bulk` (kept as is when the operator already wrote `/_bulk`).
fn bulk_url(url: &Url) -> Url {
    let mut out = url.clone();
    let path = url.path().trim_end_matches('/');
    if !path.ends_with("/_bulk") {
        out.set_path(&format!("{path}/_bulk"));
    }
    out
}

/// How one `_bulk` item ended.
enum ItemOutcome {
    /// Indexed now (2xx) or by an earlier attempt (409).
    Delivered,
    /// Refused for now (429, 5xx): the batch is sent again.
    Refused { status: u64, kind: String },
    /// Refused for what it is (another 4xx: a mapping error, a closed index).
    Rejected {
        status: u64,
        id: String,
        kind: String,
        reason: String,
    },
}

fn item_outcome(item: &Value) -> ItemOutcome {
    // Each item is `{"<action>": {"_id", "status", "error"?}}`.
    let inner = item
        .as_object()
        .and_then(|m| m.values().next())
        .unwrap_or(&Value::Null);
    let status = inner.get("status").and_then(Value::as_u64).unwrap_or(0);
    let error = inner.get("error");
    let text = |k: &str| {
        error
            .and_then(|e| e.get(k))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .chars()
            .take(EXCERPT_CHARS)
            .collect::<String>()
    };
    match status {
        200..=299 | 409 => ItemOutcome::Delivered,
        429 | 500..=599 => ItemOutcome::Refused {
            status,
            kind: text("type"),
        },
        _ => ItemOutcome::Rejected {
            status,
            id: inner
                .get("_id")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            kind: text("type"),
            reason: text("reason"),
        },
    }
}

impl Transport for Elastic {
    fn send<'a>(&'a mut self, batch: &'a [Item]) -> Sending<'a> {
        Box::pin(async move {
            let hidden = self.hidden.clone();
            let sent: Result<(), SendError> = async {
                let mut body = String::new();
                for item in batch {
                    let action = json!({"create": {"_index": self.index, "_id": item.event.id()}});
                    body.push_str(&ascii_json(&action));
                    body.push('\n');
                    body.push_str(&item.json);
                    body.push('\n');
                }
                let mut request = self
                    .client
                    .post(self.bulk_url.clone())
                    .header("content-type", "application/x-ndjson")
                    .body(body);
                if let Some(token) = &self.token {
                    request = request.header("authorization", format!("ApiKey {}", token.0));
                }
                let (status, answer) = read(&self.bulk_url, request).await?;
                let url = shown(&self.bulk_url);
                if !status.is_success() {
                    return Err(SendError::new(format!(
                        "{url} answered {status}: {}",
                        excerpt(&answer)
                    )));
                }
                let v: Value = serde_json::from_slice(&answer).map_err(|e| {
                    SendError::new(format!("{url} answered {status} with no JSON ({e})"))
                })?;
                match v.get("errors").and_then(Value::as_bool) {
                    Some(false) => return Ok(()),
                    Some(true) => {}
                    None => {
                        return Err(SendError::new(format!(
                            "{url} answered {status} without `errors`: {}",
                            excerpt(&answer)
                        )));
                    }
                }
                let items = v.get("items").and_then(Value::as_array);
                let items = items.map(Vec::as_slice).unwrap_or_default();
                if items.len() != batch.len() {
                    return Err(SendError::new(format!(
                        "{url} answered {} items for a batch of {}",
                        items.len(),
                        batch.len()
                    )));
                }
                let mut refused = Vec::new();
                for item in items {
                    match item_outcome(item) {
                        ItemOutcome::Delivered => {}
                        ItemOutcome::Refused { status, kind } => refused.push((status, kind)),
                        ItemOutcome::Rejected {
                            status,
                            id,
                            kind,
                            reason,
                        } => {
                            return Err(SendError::new(format!(
                                "{url} rejected `{id}` ({status} {kind}: {reason}); the sink \
                                 waits until the index accepts it"
                            )));
                        }
                    }
                }
                match refused.first() {
                    None => Ok(()),
                    Some((status, kind)) => Err(SendError::new(format!(
                        "{url}: {} items refused (first: {status} {kind}); the batch is sent \
                         again",
                        refused.len()
                    ))),
                }
            }
            .await;
            sent.map_err(|e| hidden.scrub(e))
        })
    }
}

/// The transport of an `ssf` sink: each event that transmits a SET
/// (`mandate_export::ssf::set_claims`) is signed with the node's current signing key
/// (`mandate_token::set::sign_set`, verifiable with Mandate's JWKS) and POSTed alone,
/// `Content-Type: application/secevent+jwt` (RFC 8935 §2), with `Authorization: Bearer`
/// from `token_file` when one is configured.
///
/// A 2xx is accepted. A 400 whose body is RFC 8935's `{"err": …}` is the receiver's
/// final word on that SET (it will refuse it again: a subject it does not know, a `jti`
/// it has seen, which is what a resent SET is): logged, and delivery goes on. Anything
/// else (no answer, 401/403, 5xx) fails the batch, sent again after a back-off; its
/// SETs keep their `jti` (the event id), so a receiver de-duplicates them.
pub fn ssf_transport(
    cfg: &SinkConfig,
    node: Arc<crate::Node>,
) -> Result<Box<dyn Transport>, String> {
    let name = &cfg.name;
    let url = parse_url(name, cfg.url.as_deref())?;
    let token = match cfg.token_file.as_deref() {
        Some(f) => Some(read_secret(name, "token_file", Some(f))?),
        None => None,
    };
    let audience = cfg
        .audience
        .clone()
        .unwrap_or_else(|| url.origin().ascii_serialization());
    Ok(Box::new(SsfPush {
        client: http_client(name, Timing::DEFAULT, &cfg.tls())?,
        hidden: Hidden::of(&url, token.as_ref()),
        url,
        token,
        audience,
        node,
        sink: name.clone(),
    }))
}

/// An `ssf` sink's transport ([`ssf_transport`]).
struct SsfPush {
    client: reqwest::Client,
    /// What an error message must not show (the bearer token, the URL's credentials).
    hidden: Hidden,
    url: Url,
    token: Option<Secret>,
    audience: String,
    node: Arc<crate::Node>,
    sink: String,
}

impl fmt::Debug for SsfPush {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SsfPush")
            .field("url", &shown(&self.url))
            .field("audience", &self.audience)
            .finish_non_exhaustive()
    }
}

impl Transport for SsfPush {
    fn send<'a>(&'a mut self, batch: &'a [Item]) -> Sending<'a> {
        Box::pin(async move { self.push(batch).await.map_err(|e| self.hidden.scrub(e)) })
    }
}

impl SsfPush {
    /// Signs and POSTs each SET of `batch`, in order (see [`ssf_transport`]).
    async fn push(&self, batch: &[Item]) -> Result<(), SendError> {
        for item in batch {
            let now = self.node.clock.now().secs();
            let Some(claims) = mandate_export::ssf::set_claims(
                &item.event,
                &self.node.config.issuer,
                &self.audience,
                now,
            ) else {
                continue;
            };
            let ring = self.node.keys.ring();
            let set = mandate_token::set::sign_set(ring.current(), ring.signing_alg(), &claims)
                .map_err(|e| SendError::new(format!("signing a SET: {e}")))?;
            let mut req = self
                .client
                .post(self.url.clone())
                .header("content-type", "application/secevent+jwt")
                .header("accept", "application/json")
                .body(set);
            if let Some(t) = &self.token {
                req = req.bearer_auth(&t.0);
            }
            let (status, body) = read(&self.url, req).await?;
            if let Some(err) = push_answer(&self.url, status, &body)? {
                tracing::warn!(
                    sink = %self.sink,
                    set = %item.event.id(),
                    err = %excerpt(err.as_bytes()),
                    "the SSF receiver refused a SET; it is not sent again"
                );
            }
        }
        Ok(())
    }
}

/// What an RFC 8935 push receiver's answer to one SET means: `Ok(None)` accepted (2xx);
/// `Ok(Some(err))` refused for good (a 400 with an `err`: sending it again would get the
/// same answer); `Err` anything else, to be sent again.
fn push_answer(url: &Url, status: StatusCode, body: &[u8]) -> Result<Option<String>, SendError> {
    if status.is_success() {
        return Ok(None);
    }
    let err = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.get("err").and_then(Value::as_str).map(str::to_owned));
    match (status, err) {
        (StatusCode::BAD_REQUEST, Some(err)) => Ok(Some(err)),
        (status, _) => Err(SendError::new(format!(
            "{} answered {status}: {}",
            shown(url),
            excerpt(body)
        ))),
    }
}

/// The push senders of Shared Signals streams receivers made
/// (`mandate_service::ssf_streams`): each stream's SETs POSTed to its `endpoint_url` as an
/// `ssf` sink's are ([`ssf_transport`]: 2xx accepted; a 400 with an RFC 8935 `err` final
/// for that SET; anything else retried).
#[derive(Debug, Clone, Copy, Default)]
pub struct StreamPush;

impl mandate_service::ssf_streams::PushSenders for StreamPush {
    fn sender(
        &self,
        stream: &mandate_service::ssf_streams::Stream,
    ) -> Result<Box<dyn mandate_service::ssf_streams::SetSender>, String> {
        let mandate_service::ssf_streams::Delivery::Push { endpoint_url } = &stream.delivery else {
            return Err(format!("stream `{}` is not a push stream", stream.id));
        };
        let name = format!("{}{}", mandate_service::ssf_streams::LOOP_PREFIX, stream.id);
        let url = parse_url(&name, Some(endpoint_url))?;
        Ok(Box::new(StreamPushSender {
            client: http_client(&name, Timing::DEFAULT, &mandate_egress::Settings::default())?,
            hidden: Hidden::of(&url, None),
            url,
            stream: stream.id.clone(),
        }))
    }
}

/// One push stream's sender ([`StreamPush`]).
struct StreamPushSender {
    client: reqwest::Client,
    hidden: Hidden,
    url: Url,
    stream: String,
}

impl mandate_service::ssf_streams::SetSender for StreamPushSender {
    fn send<'a>(
        &'a mut self,
        sets: &'a [(String, String)],
    ) -> mandate_service::ssf_streams::SetSending<'a> {
        Box::pin(async move {
            let sent = async {
                for (jti, set) in sets {
                    let req = self
                        .client
                        .post(self.url.clone())
                        .header("content-type", "application/secevent+jwt")
                        .header("accept", "application/json")
                        .body(set.clone());
                    let (status, body) = read(&self.url, req).await?;
                    if let Some(err) = push_answer(&self.url, status, &body)? {
                        tracing::warn!(
                            stream = %self.stream,
                            set = %jti,
                            err = %excerpt(err.as_bytes()),
                            "an SSF receiver refused a SET; it is not sent again"
                        );
                    }
                }
                Ok(())
            }
            .await;
            sent.map_err(|e| self.hidden.scrub(e))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_channel_is_a_version_4_uuid() {
        let c = new_channel(&OsRandom).unwrap();
        let parts: Vec<&str> = c.split('-').collect();
        assert_eq!(
            parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
            [8, 4, 4, 4, 12]
        );
        assert!(c.chars().all(|ch| ch == '-' || ch.is_ascii_hexdigit()));
        assert!(parts[2].starts_with('4'), "{c}");
        assert!(matches!(&parts[3][..1], "8" | "9" | "a" | "b"), "{c}");
        assert_ne!(c, new_channel(&OsRandom).unwrap());
    }

    #[test]
    fn the_ack_endpoint_sits_beside_the_event_endpoint() {
        let u = Url::parse("http://splunk:8088/services/collector/event?token=x").unwrap();
        assert_eq!(
            ack_url(&u, "c-1").as_str(),
            "http://splunk:8088/services/collector/ack?channel=c-1"
        );
        let u = Url::parse("http://proxy/hec/services/collector/event").unwrap();
        assert_eq!(
            ack_url(&u, "c").as_str(),
            "http://proxy/hec/services/collector/ack?channel=c"
        );
    }

    #[test]
    fn bulk_goes_to_the_base_url_s_bulk() {
        for (base, bulk) in [
            ("http://es:9200", "http://es:9200/_bulk"),
            ("http://es:9200/", "http://es:9200/_bulk"),
            ("http://es:9200/prefix/", "http://es:9200/prefix/_bulk"),
            ("http://es:9200/_bulk", "http://es:9200/_bulk"),
        ] {
            assert_eq!(bulk_url(&Url::parse(base).unwrap()).as_str(), bulk);
        }
    }

    #[test]
    fn shown_urls_hold_no_credentials() {
        let u = Url::parse("http://user:pw@host:8088/services/collector?token=t").unwrap();
        assert_eq!(shown(&u), "http://host:8088/services/collector");
    }

    #[test]
    fn secrets_never_show_in_debug() {
        let secret = "hunter2-hunter2-hunter2-hunter2";
        let s = || Secret(secret.into());
        assert_eq!(format!("{:?}", s()), "<redacted>");
        let url = Url::parse("http://user:pw@es:9200/_bulk?token=q").unwrap();
        let shown = [
            format!(
                "{:?}",
                Elastic {
                    client: mandate_egress::default_builder().build().unwrap(),
                    hidden: Hidden::default(),
                    bulk_url: url.clone(),
                    token: Some(s()),
                    index: "i".into(),
                }
            ),
            format!(
                "{:?}",
                Webhook {
                    client: mandate_egress::default_builder().build().unwrap(),
                    hidden: Hidden::default(),
                    url: url.clone(),
                    secret: s(),
                    clock: Arc::new(mandate_core::clock::ManualClock::at_millis(0)),
                }
            ),
            format!(
                "{:?}",
                Splunk {
                    client: mandate_egress::default_builder().build().unwrap(),
                    hidden: Hidden::default(),
                    url: url.clone(),
                    ack_url: url,
                    token: s(),
                    channel: "c".into(),
                    index: None,
                    sourcetype: "mandate:jsonl".into(),
                    ack: true,
                    timing: Timing::DEFAULT,
                }
            ),
        ];
        for d in shown {
            assert!(d.contains("<redacted>"), "{d}");
            for hidden in [secret, "pw", "token=q"] {
                assert!(!d.contains(hidden), "{d}");
            }
        }
    }
}
