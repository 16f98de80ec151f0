//! The live Foxglove server (`kind = "foxglove"`): the Foxglove WebSocket
//! protocol (subprotocol `foxglove.websocket.v1`) on `listen` (loopback by
//! default; a non-loopback address only when set, and the log says so),
//! serving the channels of [`super::fox_msg`] live: Foxglove's "Open
//! connection" → "Foxglove WebSocket" → `ws://127.0.0.1:8765`.
//!
//! Protocol (server side, the parts a viewer needs): on connect the server
//! sends `serverInfo` and `advertise` (every channel with its JSON schema);
//! the client sends `subscribe` (`{"id": S, "channelId": C}` pairs) and
//! `unsubscribe`; each new frame then goes out as one binary `messageData`
//! per subscribed channel (opcode 1, subscription id u32 LE, timestamp
//! u64 LE in ns, the JSON message).
//!
//! Threads and queues: the frame path copies frames into the viewer's
//! boot-allocated shots ([`super::viewer`]: bounded, latest wins, never
//! waits on a live source). On the viewer thread, shared with the live
//! view and the MCAP recorder, the view takes the camera JPEG (encoded
//! once per frame for every view asking for the same quality: the MCAP
//! recorder's too) while a client is connected, encodes the frame's
//! messages and swaps them into the one shared "latest" slot under a
//! mutex that only it and the client threads take. The accept thread and
//! one thread per client ([`super::server`], at most `max_clients`, more
//! are refused with an HTTP 503): a client takes the newest frame whenever
//! it is ready for one, so a slow client gets fewer frames and slows
//! nobody; a client whose socket stays full for [`WRITE_TIMEOUT`] is
//! dropped; a client that goes is cleaned up (its thread ends, its socket
//! is forgotten). At the end of the run every socket is shut down and
//! every thread joined.
//!
//! Allocation: boot binds the socket, builds the `advertise` message and
//! allocates the frame copies. The frame path allocates nothing. Stated
//! side-thread allocations (every thread here is marked a side thread):
//! the JPEG encoder's working buffers per frame and the message buffers
//! until they reach the largest frame's size (viewer thread); per client,
//! its thread, the WebSocket's read and write buffers, the parsed requests
//! and, per frame sent, one `messageData` buffer per subscribed channel
//! (the latest frame only: at most one frame's messages per client).

use super::fox_msg::{self, Encoder, Messages};
use super::http::lock;
use super::server::{Clients, Server};
use super::viewer::{Look, Pictures, Shot, View, Viewed};
use super::{OutputContext, OutputError};
use serde::Deserialize;
use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;
use tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tungstenite::http::{HeaderValue, StatusCode};
use tungstenite::protocol::WebSocketConfig;
use tungstenite::{Message, WebSocket};

/// The WebSocket subprotocol of the Foxglove WebSocket protocol.
pub const SUBPROTOCOL: &str = "foxglove.websocket.v1";
/// A client whose socket stays full this long is dropped.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// The opening handshake must complete within this.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(2);
/// How often a client thread looks for a new frame, a request or the stop.
const POLL: Duration = Duration::from_millis(10);
/// Largest request a client may send (subscribe lists are small).
const REQUEST_BYTES: usize = 64 * 1024;
/// `messageData` opcode.
const MESSAGE_DATA: u8 = 1;

/// `[[output]]` with `kind = "foxglove"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FoxgloveConfig {
    /// `HOST:PORT`; loopback unless set otherwise. Port 0 picks a free port
    /// (logged).
    #[serde(default = "d_listen")]
    pub listen: String,
    /// Clients served at once (1..=64); more are refused.
    #[serde(default = "d_clients")]
    pub max_clients: usize,
    /// JPEG quality of the camera images, 1..=100.
    #[serde(default = "d_quality")]
    pub quality: u8,
}

/// The default `listen` (Foxglove's usual port).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8765";

fn d_listen() -> String {
    DEFAULT_LISTEN.into()
}
fn d_clients() -> usize {
    8
}
fn d_quality() -> u8 {
    80
}

impl FoxgloveConfig {
    /// What is wrong with the table, as (field, value, why).
    pub fn problem(&self) -> Option<(&'static str, String, String)> {
        super::server::problem(&self.listen, self.max_clients, self.quality, DEFAULT_LISTEN)
    }
}

/// What the viewer thread publishes and the clients read.
struct Latest {
    /// Frames encoded so far (0: none yet).
    seq: u64,
    msgs: Messages,
}

struct Shared {
    latest: Mutex<Latest>,
    clients: Arc<Clients>,
    server_info: String,
    advertise: String,
    /// Channels advertised (ids 1..=count, in [`fox_msg::ALL`] order).
    count: usize,
}

/// Boot: binds `listen` (a port in use fails here), starts the accept
/// thread; returns the server's [`View`] (named `foxglove:ADDR`, with the
/// bound port) for the viewer thread it shares with the other outputs
/// that show pixels ([`super::viewer::spawn`]).
pub fn open(cfg: &FoxgloveConfig, ctx: &OutputContext) -> Result<Viewed, OutputError> {
    let server = Server::bind(&cfg.listen, "foxglove", cfg.max_clients)?;
    let addr = server.addr;
    if addr.ip().is_loopback() {
        log::info!("foxglove: WebSocket server on ws://{addr} (loopback only)");
    } else {
        log::warn!(
            "foxglove: WebSocket server on ws://{addr} on a non-loopback address, as \
             configured: anyone who reaches it can watch"
        );
    }
    let desc = ctx.desc;
    let encoder = Encoder::new(&ctx.labels, ctx.calibration.clone());
    let count = encoder.channels();
    let frame_guess = desc.width * desc.height;
    let shared = Arc::new(Shared {
        latest: Mutex::new(Latest {
            seq: 0,
            msgs: Messages::new(count, frame_guess),
        }),
        clients: Arc::clone(&server.clients),
        server_info: server_info(),
        advertise: advertise(count),
        count,
    });
    let accept = {
        let shared = Arc::clone(&shared);
        server.start(
            "fox",
            b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\n\
              Connection: close\r\n\r\ntoo many clients\n",
            !ctx.lockstep,
            move |s, peer| match serve(s, &shared) {
                Ok(()) => log::info!("foxglove: client {peer} left"),
                Err(e) => log::info!("foxglove: client {peer} dropped: {e}"),
            },
        )?
    };
    let view = FoxView {
        shared,
        accept: Some(accept),
        quality: cfg.quality,
        encoder,
        msgs: Messages::new(count, frame_guess),
    };
    Ok(Viewed {
        name: format!("foxglove:{addr}"),
        view: Box::new(view),
        skipped: None,
    })
}

/// `serverInfo`. Boot.
fn server_info() -> String {
    let session = crate::clock::monotonic_ns();
    serde_json::json!({
        "op": "serverInfo",
        "name": concat!("perceptd ", env!("CARGO_PKG_VERSION")),
        "capabilities": [],
        "supportedEncodings": [],
        "metadata": {},
        "sessionId": session.to_string(),
    })
    .to_string()
}

/// `advertise` of the first `count` channels (ids from 1). Boot.
fn advertise(count: usize) -> String {
    let channels: Vec<_> = fox_msg::ALL[..count]
        .iter()
        .enumerate()
        .map(|(i, c)| {
            serde_json::json!({
                "id": i + 1,
                "topic": c.topic,
                "encoding": fox_msg::MESSAGE_ENCODING,
                "schemaName": c.schema_name,
                "schema": fox_msg::schema(i),
                "schemaEncoding": fox_msg::SCHEMA_ENCODING,
            })
        })
        .collect();
    serde_json::json!({ "op": "advertise", "channels": channels }).to_string()
}

/// The viewer-thread side: encodes each frame's messages and publishes
/// them as the latest.
struct FoxView {
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
    quality: u8,
    encoder: Encoder,
    msgs: Messages,
}

impl View for FoxView {
    /// The JPEG encoder's working buffers, each frame.
    fn allocates(&self) -> bool {
        true
    }

    fn show(&mut self, pics: &mut Pictures, shot: &Shot) -> Result<(), String> {
        // Nobody to send to: spare the JPEG encoding (a client that
        // connects gets the next frame).
        if self.shared.clients.connected() == 0 {
            return Ok(());
        }
        let jpeg = pics.jpeg(Look::Camera, self.quality, shot)?;
        self.encoder.encode(jpeg, shot, &mut self.msgs)?;
        let mut l = lock(&self.shared.latest);
        std::mem::swap(&mut l.msgs, &mut self.msgs);
        l.seq += 1;
        Ok(())
    }

    fn end(&mut self) -> Result<(), String> {
        self.shared.clients.stop();
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
        Ok(())
    }
}

/// The handshake's check: the client must offer [`SUBPROTOCOL`], which
/// the response then selects. (The signature is tungstenite's callback.)
#[allow(clippy::result_large_err)]
fn select_subprotocol(req: &Request, mut resp: Response) -> Result<Response, ErrorResponse> {
    let offered = req
        .headers()
        .get_all("Sec-WebSocket-Protocol")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|p| p.trim() == SUBPROTOCOL);
    if !offered {
        let mut e = ErrorResponse::new(Some(format!(
            "this server speaks the WebSocket subprotocol {SUBPROTOCOL} only\n"
        )));
        *e.status_mut() = StatusCode::BAD_REQUEST;
        return Err(e);
    }
    resp.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        HeaderValue::from_static(SUBPROTOCOL),
    );
    Ok(resp)
}

/// A client request (the ops this server acts on; others are ignored).
#[derive(Deserialize)]
#[serde(tag = "op", rename_all = "camelCase")]
enum ClientOp {
    Subscribe {
        subscriptions: Vec<Subscription>,
    },
    Unsubscribe {
        #[serde(rename = "subscriptionIds")]
        subscription_ids: Vec<u32>,
    },
}

#[derive(Deserialize)]
struct Subscription {
    id: u32,
    #[serde(rename = "channelId")]
    channel_id: u32,
}

/// Per channel (index), the client's subscription id.
type Subs = [Option<u32>; fox_msg::CHANNELS];

/// Applies one text request to `subs`; ignores what it does not know.
fn apply(text: &str, subs: &mut Subs, count: usize) {
    match serde_json::from_str::<ClientOp>(text) {
        Ok(ClientOp::Subscribe { subscriptions }) => {
            for s in subscriptions {
                let ch = s.channel_id as usize;
                if (1..=count).contains(&ch) {
                    subs[ch - 1] = Some(s.id);
                }
            }
        }
        Ok(ClientOp::Unsubscribe { subscription_ids }) => {
            for s in subs.iter_mut() {
                if s.is_some_and(|id| subscription_ids.contains(&id)) {
                    *s = None;
                }
            }
        }
        Err(_) => {}
    }
}

/// One client: handshake, `serverInfo`, `advertise`, then requests and
/// the newest frame's messages until the client goes, stalls past
/// [`WRITE_TIMEOUT`] or the run ends.
fn serve(s: TcpStream, shared: &Shared) -> Result<(), String> {
    let io = |e: std::io::Error| e.to_string();
    s.set_read_timeout(Some(HANDSHAKE_TIMEOUT)).map_err(io)?;
    s.set_write_timeout(Some(WRITE_TIMEOUT)).map_err(io)?;
    let _ = s.set_nodelay(true);
    let config = WebSocketConfig::default()
        .max_message_size(Some(REQUEST_BYTES))
        .max_frame_size(Some(REQUEST_BYTES));
    let mut ws: WebSocket<TcpStream> =
        tungstenite::accept_hdr_with_config(s, select_subprotocol, Some(config))
            .map_err(|e| format!("handshake: {e}"))?;
    ws.get_mut().set_read_timeout(Some(POLL)).map_err(io)?;
    let ws_err = |e: tungstenite::Error| e.to_string();
    ws.send(Message::text(shared.server_info.as_str()))
        .map_err(ws_err)?;
    ws.send(Message::text(shared.advertise.as_str()))
        .map_err(ws_err)?;
    let mut subs: Subs = [None; fox_msg::CHANNELS];
    let mut seen = 0u64;
    let mut out: Vec<Vec<u8>> = Vec::with_capacity(fox_msg::CHANNELS);
    loop {
        if shared.clients.stopped() {
            let _ = ws.close(None);
            let _ = ws.flush();
            return Ok(());
        }
        match ws.read() {
            Ok(Message::Text(t)) => apply(t.as_str(), &mut subs, shared.count),
            Ok(Message::Close(_)) => {
                let _ = ws.flush();
                return Ok(());
            }
            Ok(_) => {}
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => {
                return Ok(())
            }
            Err(e) => return Err(ws_err(e)),
        }
        if subs.iter().all(Option::is_none) {
            continue;
        }
        {
            let l = lock(&shared.latest);
            if l.seq == seen {
                continue;
            }
            seen = l.seq;
            let t = l.msgs.time_ns;
            for (ch, sub) in subs.iter().enumerate().take(l.msgs.count) {
                let Some(sub) = sub else {
                    continue;
                };
                let data = &l.msgs.data[ch];
                let mut m = Vec::with_capacity(13 + data.len());
                m.push(MESSAGE_DATA);
                m.extend_from_slice(&sub.to_le_bytes());
                m.extend_from_slice(&t.to_le_bytes());
                m.extend_from_slice(data);
                out.push(m);
            }
        }
        for m in out.drain(..) {
            ws.send(Message::binary(m)).map_err(ws_err)?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscribe_and_unsubscribe_map_channel_ids_to_subscriptions() {
        let mut subs: Subs = [None; fox_msg::CHANNELS];
        apply(
            r#"{"op":"subscribe","subscriptions":[{"id":7,"channelId":1},{"id":8,"channelId":3},{"id":9,"channelId":99}]}"#,
            &mut subs,
            3,
        );
        assert_eq!(subs[..3], [Some(7), None, Some(8)]);
        apply(
            r#"{"op":"unsubscribe","subscriptionIds":[7]}"#,
            &mut subs,
            3,
        );
        assert_eq!(subs[..3], [None, None, Some(8)]);
        // Unknown ops and junk are ignored.
        apply(r#"{"op":"getParameters"}"#, &mut subs, 3);
        apply("not json", &mut subs, 3);
        assert_eq!(subs[..3], [None, None, Some(8)]);
    }

    #[test]
    fn advertise_lists_each_channel_with_its_schema() {
        let v: serde_json::Value = serde_json::from_str(&advertise(fox_msg::CHANNELS)).unwrap();
        let chans = v["channels"].as_array().unwrap();
        assert_eq!(chans.len(), fox_msg::CHANNELS);
        assert_eq!(chans[0]["id"], 1);
        assert_eq!(chans[0]["schemaName"], "foxglove.CompressedImage");
        let schema: serde_json::Value =
            serde_json::from_str(chans[0]["schema"].as_str().unwrap()).unwrap();
        assert_eq!(schema["properties"]["data"]["contentEncoding"], "base64");
    }
}
