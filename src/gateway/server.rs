//! The gateway's HTTP routes: join pages, the participants' WebSockets (relayed to the
//! meeting's SFU), the web client's assets, the privacy notice, health and metrics.
//!
//! Every request for a join token is a lookup in the [`Directory`]; a miss costs the
//! client one token of its [`MissLimiter`] bucket and gets the one generic "not found"
//! answer. Opening a join page and joining are written to the access log (time, IP,
//! User-Agent); nothing about a request reaches the process log.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures::{SinkExt, StreamExt};
use jiff::Timestamp;
use tokio_tungstenite::tungstenite::Message as UpMessage;

use super::assets::ASSETS;
use super::client_ip::TrustedProxies;
use super::directory::{Backend, Directory, Meeting, State as MeetingState, plausible_token};
use super::i18n::Lang;
use super::limiter::MissLimiter;
use super::metrics::{Metrics, Outcome, Route};
use super::pages::{self, PrivacyNotice};
use crate::access_log::entry::Entry;
use crate::access_log::writer::AccessLog;
use crate::signaling::{self, ErrorCode};

/// Largest frame read from a participant (2 MiB), as the SFU reads them; anything over
/// the protocol's limit ([`signaling::MAX_FRAME_BYTES`]) is answered `too-large` by the
/// gateway itself, which then closes, as the SFU would. Beyond the read limit the rest
/// of the frame is never read, so that answer is best effort.
const MAX_MESSAGE: usize = crate::rooms::session::MAX_WS_MESSAGE;
/// How long the SFU may take to accept a relayed connection.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest User-Agent kept in the access log (longer ones are cut).
const MAX_USER_AGENT: usize = 512;

/// What every request needs.
pub struct Gateway {
    /// The meetings by token.
    pub directory: Arc<Directory>,
    /// The access log.
    pub access_log: AccessLog,
    /// Whose `X-Forwarded-For` to believe.
    pub trusted_proxies: TrustedProxies,
    /// The privacy notice's facts and wording.
    pub privacy: PrivacyNotice,
    /// The miss limiter.
    pub misses: MissLimiter,
    /// Metrics.
    pub metrics: Metrics,
    /// The origins (`scheme://host[:port]`) browsers may send on WebSocket upgrades,
    /// so no other site can open a participant's connection.
    pub origins: Vec<String>,
    /// Set once the directory holds the first complete list of meetings.
    pub ready: AtomicBool,
}

/// The router. Serve it with `into_make_service_with_connect_info::<SocketAddr>()`.
pub fn router(gateway: Arc<Gateway>) -> Router {
    Router::new()
        .route("/j/{token}", get(join_page))
        .route("/j/{token}/state", get(state))
        .route("/j/{token}/ws", get(ws))
        .route("/assets/{file}", get(asset))
        .route("/favicon.ico", get(favicon))
        .route("/privacy", get(privacy))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .with_state(gateway)
}

fn lang(headers: &HeaderMap) -> Lang {
    Lang::negotiate(
        headers
            .get(header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok()),
    )
}

/// An HTML page that is never cached (join pages carry a secret in their URL and
/// change with the meeting's state) and never leaks its URL as a referrer.
fn html(status: StatusCode, body: String) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                 media-src 'self' blob:; connect-src 'self'; form-action 'none'; \
                 frame-ancestors 'none'; base-uri 'none'",
            ),
        ],
        body,
    )
        .into_response()
}

impl Gateway {
    fn client_ip(&self, peer: SocketAddr, headers: &HeaderMap) -> IpAddr {
        self.trusted_proxies.client_ip(
            peer.ip(),
            headers
                .get_all("x-forwarded-for")
                .iter()
                .filter_map(|v| v.to_str().ok()),
        )
    }

    /// Writes one access-log entry for this request.
    fn record(&self, ip: IpAddr, headers: &HeaderMap) {
        let ua = headers
            .get(header::USER_AGENT)
            .map(|v| String::from_utf8_lossy(v.as_bytes()))
            .unwrap_or_default();
        let ua: String = ua.chars().take(MAX_USER_AGENT).collect();
        self.access_log
            .record(Entry::new(Timestamp::now(), ip.to_string(), ua));
    }

    /// Looks `token` up for the client at `ip` on `route` and counts the outcome: the
    /// meeting if there is one, and what the lookup found.
    fn lookup(&self, route: Route, token: &str, ip: IpAddr) -> (Option<Arc<Meeting>>, Outcome) {
        let found = self.find(token, ip);
        let outcome = match &found {
            Ok(m) => outcome_of(m, token),
            Err(o) => *o,
        };
        self.metrics.lookup(route, outcome);
        (found.ok(), outcome)
    }

    /// The meeting behind `token`, or why there is none for the client at `ip`: it is
    /// rate-limited, or the token leads nowhere (which costs it one miss).
    fn find(&self, token: &str, ip: IpAddr) -> Result<Arc<Meeting>, Outcome> {
        // Before the first complete list every token would look unknown: say "try
        // again" rather than "not found", and charge nobody a miss.
        if !self.ready.load(Ordering::Relaxed) {
            return Err(Outcome::unavailable);
        }
        let now = Instant::now();
        if !self.misses.allows(ip, now) {
            return Err(Outcome::rate_limited);
        }
        let found = if plausible_token(token) {
            self.directory.get(token)
        } else {
            None
        };
        found.ok_or_else(|| {
            self.misses.miss(ip, now);
            Outcome::not_found
        })
    }
}

/// What `token` finds in `m`. A full meeting still lets its hosts in (the SFU keeps
/// seats for them), so the host link never meets the "full" page.
fn outcome_of(m: &Meeting, token: &str) -> Outcome {
    match m.state {
        MeetingState::Waiting { .. } => Outcome::waiting,
        MeetingState::Ended => Outcome::ended,
        MeetingState::Open if m.full() && !m.is_host_token(token) => Outcome::full,
        MeetingState::Open => Outcome::open,
    }
}

async fn join_page(
    Path(token): Path<String>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    State(gw): State<Arc<Gateway>>,
) -> Response {
    let ip = gw.client_ip(peer, &headers);
    gw.record(ip, &headers);
    let lang = lang(&headers);
    let (meeting, outcome) = gw.lookup(Route::join, &token, ip);
    let Some(meeting) = meeting else {
        return miss_page(outcome, lang);
    };
    match meeting.state {
        MeetingState::Waiting { starts_at } => {
            html(StatusCode::OK, pages::waiting(lang, &meeting, starts_at))
        }
        MeetingState::Ended => html(StatusCode::GONE, pages::ended(lang)),
        MeetingState::Open if outcome == Outcome::full => html(
            StatusCode::SERVICE_UNAVAILABLE,
            pages::full(lang, meeting.max_participants),
        ),
        MeetingState::Open => {
            let invite = gw.directory.invite_token(&token).unwrap_or_default();
            html(StatusCode::OK, pages::join(lang, &meeting, &invite))
        }
    }
}

fn miss_page(outcome: Outcome, lang: Lang) -> Response {
    match outcome {
        Outcome::rate_limited => {
            let mut r = html(StatusCode::TOO_MANY_REQUESTS, pages::too_many(lang));
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("60"));
            r
        }
        Outcome::unavailable => {
            let mut r = html(StatusCode::SERVICE_UNAVAILABLE, pages::starting(lang));
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("2"));
            r
        }
        _ => html(StatusCode::NOT_FOUND, pages::not_found(lang)),
    }
}

/// The meeting's state for the waiting page's polling: `{"state": "waiting" | "open"
/// | "ended" | "full"}`; misses are 404 `{"state": "not-found"}`.
async fn state(
    Path(token): Path<String>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    State(gw): State<Arc<Gateway>>,
) -> Response {
    let ip = gw.client_ip(peer, &headers);
    let (_, outcome) = gw.lookup(Route::state, &token, ip);
    let (status, name) = match outcome {
        Outcome::open => (StatusCode::OK, "open"),
        Outcome::waiting => (StatusCode::OK, "waiting"),
        Outcome::ended => (StatusCode::OK, "ended"),
        Outcome::full => (StatusCode::OK, "full"),
        Outcome::not_found => (StatusCode::NOT_FOUND, "not-found"),
        Outcome::rate_limited => (StatusCode::TOO_MANY_REQUESTS, "rate-limited"),
        Outcome::unavailable => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
    };
    (
        status,
        [(header::CACHE_CONTROL, "no-store")],
        axum::Json(serde_json::json!({ "state": name })),
    )
        .into_response()
}

async fn ws(
    Path(token): Path<String>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    State(gw): State<Arc<Gateway>>,
    upgrade: WebSocketUpgrade,
) -> Response {
    // Browsers always send Origin on WebSocket upgrades; another site's page must not
    // open a connection with a participant's cookies or network position.
    if let Some(origin) = headers.get(header::ORIGIN)
        && !gw.origins.iter().any(|o| o.as_bytes() == origin.as_bytes())
    {
        return (
            StatusCode::FORBIDDEN,
            "cross-origin connections are refused\n",
        )
            .into_response();
    }
    let ip = gw.client_ip(peer, &headers);
    gw.record(ip, &headers);
    let (found, outcome) = gw.lookup(Route::ws, &token, ip);
    let upgrade = upgrade
        .max_message_size(MAX_MESSAGE)
        .max_frame_size(MAX_MESSAGE);
    // Refusals are protocol errors on an open socket, so the web client can tell
    // them apart from a lost connection.
    let refusal = match outcome {
        Outcome::unavailable => {
            Some((ErrorCode::Unavailable, "the gateway is starting; try again"))
        }
        // Not final: a school behind one NAT may share a bucket; the client backs off.
        Outcome::rate_limited => Some((
            ErrorCode::RateLimited,
            "too many failed lookups from this address; try again later",
        )),
        Outcome::not_found => Some((ErrorCode::Unauthorized, "this link is not valid")),
        Outcome::waiting => Some((ErrorCode::NotStarted, "the meeting has not started")),
        Outcome::ended => Some((ErrorCode::MeetingEnded, "the meeting has ended")),
        // A full meeting is refused by its SFU (room-full), which knows for sure.
        Outcome::open | Outcome::full => None,
    };
    if let Some((code, message)) = refusal {
        return upgrade.on_upgrade(move |socket| signaling::refuse(socket, code, message));
    }
    let meeting = found.expect("refusals handled above");
    match meeting.backend.clone() {
        Some(Backend::Local(room)) => upgrade.on_upgrade(move |socket| async move {
            let _session = gw.metrics.session();
            crate::rooms::session::session(socket, room).await;
        }),
        Some(Backend::Remote(addr)) => {
            upgrade.on_upgrade(move |socket| async move { relay(socket, &addr, &gw).await })
        }
        None => upgrade.on_upgrade(|socket| {
            signaling::refuse(socket, ErrorCode::NotStarted, "the meeting has not started")
        }),
    }
}

/// Relays one participant's signaling between the browser and the SFU at `addr`,
/// frame by frame, until either side closes.
async fn relay(client: WebSocket, addr: &str, gw: &Gateway) {
    let _session = gw.metrics.session();
    let url = format!("ws://{addr}/ws");
    let upstream = match tokio::time::timeout(
        UPSTREAM_TIMEOUT,
        tokio_tungstenite::connect_async(url.as_str()),
    )
    .await
    {
        Ok(Ok((s, _))) => s,
        _ => {
            gw.metrics.upstream_failure();
            return signaling::refuse(
                client,
                ErrorCode::Unavailable,
                "the meeting's media server cannot be reached",
            )
            .await;
        }
    };
    let (mut up_tx, mut up_rx) = upstream.split();
    let (mut down_tx, mut down_rx) = client.split();
    let (mut up, mut down) = (0u64, 0u64);
    loop {
        tokio::select! {
            m = down_rx.next() => {
                let forward = match m {
                    Some(Ok(Message::Text(t))) if t.len() > signaling::MAX_FRAME_BYTES => {
                        let _ = down_tx.send(Message::Text(signaling::too_large().to_frame().into())).await;
                        break;
                    }
                    Some(Err(e)) if signaling::over_read_limit(&e) => {
                        let _ = down_tx.send(Message::Text(signaling::too_large().to_frame().into())).await;
                        break;
                    }
                    Some(Ok(Message::Text(t))) => UpMessage::text(t.as_str()),
                    Some(Ok(Message::Binary(b))) => UpMessage::binary(b),
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                    Some(Ok(Message::Close(_)) | Err(_)) | None => break,
                };
                if up_tx.send(forward).await.is_err() {
                    break;
                }
                up += 1;
            }
            m = up_rx.next() => {
                let forward = match m {
                    Some(Ok(UpMessage::Text(t))) => Message::Text(t.as_str().into()),
                    Some(Ok(UpMessage::Binary(b))) => Message::Binary(b),
                    Some(Ok(UpMessage::Ping(_) | UpMessage::Pong(_) | UpMessage::Frame(_))) => continue,
                    Some(Ok(UpMessage::Close(_)) | Err(_)) | None => break,
                };
                if down_tx.send(forward).await.is_err() {
                    break;
                }
                down += 1;
            }
        }
    }
    let _ = up_tx.close().await;
    let _ = down_tx.close().await;
    gw.metrics.relayed("up", up);
    gw.metrics.relayed("down", down);
}

async fn asset(Path(file): Path<String>) -> Response {
    match ASSETS.get(&format!("/assets/{file}")) {
        Some(a) => (
            [
                (header::CONTENT_TYPE, a.content_type),
                (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            ],
            a.body,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "not found\n").into_response(),
    }
}

async fn favicon() -> Response {
    (
        [
            (header::CONTENT_TYPE, "image/x-icon"),
            (header::CACHE_CONTROL, "public, max-age=86400"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        crate::gateway::assets::FAVICON,
    )
        .into_response()
}

async fn privacy(headers: HeaderMap, State(gw): State<Arc<Gateway>>) -> Response {
    html(StatusCode::OK, pages::privacy(lang(&headers), &gw.privacy))
}

async fn not_found(headers: HeaderMap) -> Response {
    html(StatusCode::NOT_FOUND, pages::not_found(lang(&headers)))
}

async fn readyz(State(gw): State<Arc<Gateway>>) -> Response {
    if gw.ready.load(Ordering::Relaxed) {
        (StatusCode::OK, "ok\n").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "the list of meetings is not loaded yet\n",
        )
            .into_response()
    }
}

async fn metrics(State(gw): State<Arc<Gateway>>) -> Response {
    gw.metrics.set_meetings(gw.directory.len());
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        gw.metrics.render(gw.access_log.counters()),
    )
        .into_response()
}
