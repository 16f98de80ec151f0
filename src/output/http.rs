//! The live view (`kind = "http"`): a small HTTP/1.1 server on `listen`
//! (loopback by default) showing what the pipeline sees.
//!
//! * `/`: one self-contained page (no external scripts or fonts, see
//!   `http_page.html`): the annotated stream, fps, drops, per-stage p50/p99
//!   latency with a small rolling plot, the current detections.
//! * `/stream.mjpg`: the annotated frames as `multipart/x-mixed-replace`
//!   JPEG (MJPEG).
//! * `/stats`: the metrics as JSON (see [`write_stats`]).
//!
//! Threads and queues: the frame path copies frames into the viewer's
//! boot-allocated shots ([`super::viewer`]: bounded, latest wins, never
//! waits on a live source; in a lockstep replay that also records MCAP
//! the shared viewer thread gets every frame). On the viewer thread,
//! shared with the MCAP recorder and the Foxglove server, the view takes
//! the annotated JPEG (`jpeg-encoder` crate, encoded once per frame for
//! whichever views ask for the same look and quality, and only while a
//! client is connected) and writes the stats JSON, and puts both into the
//! one shared "latest" slot under a mutex that only it and the client
//! threads take (never the frame path). The accept thread and one thread
//! per client ([`super::server`], at most `max_clients`, more get 503):
//! a client always takes the newest frame when it is ready for one, so a
//! slow or stalled client gets fewer frames and slows nobody else; a
//! client whose socket stays full for [`WRITE_TIMEOUT`] is dropped. At the
//! end of the run every client socket is shut down and every thread joined
//! (well under a second).
//!
//! Allocation: boot binds the socket and allocates the buffers. The frame
//! path allocates nothing. Stated side-thread allocations: the JPEG
//! encoder's per-frame working buffers on the viewer thread (a few times
//! the frame's size, freed after each frame) and the latest JPEG's buffer
//! until it reaches the largest frame's size; per client, its thread, its
//! request buffer (4 KiB) and one copy of the latest JPEG or stats (grown
//! to the largest seen, then reused).

use super::draw::Canvas;
use super::json::{num, write_line};
use super::server::{Clients, Server};
use super::viewer::{Look, Pictures, Shot, View, Viewed};
use super::{OutputContext, OutputError};
use crate::frame::FrameRecord;
use crate::postprocess::Labels;
use crate::text::SliceWriter;
use serde::Deserialize;
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// The page at `/`.
const PAGE: &str = include_str!("http_page.html");

/// A client whose socket stays full this long is dropped.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// A request must arrive within this.
const READ_TIMEOUT: Duration = Duration::from_secs(2);
/// How often waiting threads look at the stop flag.
const POLL: Duration = Duration::from_millis(50);
/// Largest request head read.
const REQUEST_BYTES: usize = 4096;
/// Frames in the rolling latency window of `/stats`.
const WINDOW: usize = 128;

/// `[[output]]` with `kind = "http"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// `HOST:PORT`; loopback unless set otherwise. Port 0 picks a free port
    /// (logged).
    #[serde(default = "d_listen")]
    pub listen: String,
    /// Viewers served at once (1..=64); more get 503.
    #[serde(default = "d_clients")]
    pub max_clients: usize,
    /// JPEG quality 1..=100.
    #[serde(default = "d_quality")]
    pub quality: u8,
    /// Draw the ground grid and horizon when a calibration is loaded.
    #[serde(default)]
    pub grid: bool,
}

/// The default `listen`.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8090";

fn d_listen() -> String {
    DEFAULT_LISTEN.into()
}
fn d_clients() -> usize {
    8
}
fn d_quality() -> u8 {
    80
}

impl HttpConfig {
    /// What is wrong with the table, as (field, value, why).
    pub fn problem(&self) -> Option<(&'static str, String, String)> {
        super::server::problem(&self.listen, self.max_clients, self.quality, DEFAULT_LISTEN)
    }
}

/// What the viewer thread publishes and the clients read.
struct Latest {
    /// Frames encoded so far (0: none yet).
    seq: u64,
    jpeg: Vec<u8>,
    stats: Vec<u8>,
}

struct Shared {
    latest: Mutex<Latest>,
    fresh: Condvar,
    /// The output's skipped frames (frame path, through its seat), for
    /// `/stats`.
    skipped: Arc<AtomicU64>,
    clients: Arc<Clients>,
}

/// Boot: binds `listen` (a port in use fails here), starts the accept
/// thread; returns the live view's [`View`] (named `http:ADDR`, with the
/// bound port) for the viewer thread it shares with the other outputs
/// that show pixels ([`super::viewer::spawn`]).
pub fn open(cfg: &HttpConfig, ctx: &OutputContext) -> Result<Viewed, OutputError> {
    let server = Server::bind(&cfg.listen, "http", cfg.max_clients)?;
    let addr = server.addr;
    if addr.ip().is_loopback() {
        log::info!("http: live view on http://{addr}/ (loopback only)");
    } else {
        log::warn!(
            "http: live view on http://{addr}/ on a non-loopback address, as configured: \
             anyone who reaches it can watch"
        );
    }
    let desc = ctx.desc;
    let frame_guess = desc.width * desc.height;
    let shared = Arc::new(Shared {
        latest: Mutex::new(Latest {
            seq: 0,
            jpeg: Vec::with_capacity(frame_guess),
            stats: Vec::with_capacity(STATS_BYTES),
        }),
        fresh: Condvar::new(),
        skipped: Arc::new(AtomicU64::new(0)),
        clients: Arc::clone(&server.clients),
    });
    let accept = {
        let shared = Arc::clone(&shared);
        server.start(
            "http",
            b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\n\
              Connection: close\r\n\r\ntoo many viewers\n",
            !ctx.lockstep,
            move |s, _| {
                let _ = serve(s, &shared);
            },
        )?
    };
    let skipped = Arc::clone(&shared.skipped);
    let view = HttpView {
        shared,
        accept: Some(accept),
        quality: cfg.quality,
        look: Look::Annotated { grid: cfg.grid },
        stats: vec![0; STATS_BYTES].into_boxed_slice(),
        stats_vec: Vec::with_capacity(STATS_BYTES),
        labels: ctx.labels.clone(),
        window: Box::new([[0.0; 6]; WINDOW]),
        scratch: Box::new([0.0; WINDOW]),
        filled: 0,
        next: 0,
        shown: 0,
    };
    Ok(Viewed {
        name: format!("http:{addr}"),
        view: Box::new(view),
        skipped: Some(skipped),
    })
}

/// Bytes of one `/stats` document (the frame's JSON line included).
const STATS_BYTES: usize = 128 * 1024;

/// The viewer-thread side: JPEG and stats for each frame shown.
struct HttpView {
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
    quality: u8,
    look: Look,
    stats: Box<[u8]>,
    stats_vec: Vec<u8>,
    labels: Labels,
    /// Per frame: capture time (ms), queue, preprocess, inference,
    /// postprocess, e2e (ms); a ring of the last [`WINDOW`] frames shown.
    window: Box<[[f64; 6]; WINDOW]>,
    scratch: Box<[f64; WINDOW]>,
    filled: usize,
    next: usize,
    shown: u64,
}

impl View for HttpView {
    /// The JPEG encoder's working buffers, each frame.
    fn allocates(&self) -> bool {
        true
    }

    fn show(&mut self, pics: &mut Pictures, shot: &Shot) -> Result<(), String> {
        // Nobody watching: spare the drawing and the JPEG (a viewer that
        // connects gets the next frame); the stats still follow.
        let jpeg = if self.shared.clients.connected() > 0 {
            Some(pics.jpeg(self.look, self.quality, shot)?)
        } else {
            None
        };
        let r = &shot.record;
        self.window[self.next] = [
            r.capture_ns as f64 * 1e-6,
            r.queue_ms as f64,
            r.preprocess_ms as f64,
            r.inference_ms as f64,
            r.postprocess_ms as f64,
            r.e2e_ms as f64,
        ];
        self.next = (self.next + 1) % WINDOW;
        self.filled = (self.filled + 1).min(WINDOW);
        self.shown += 1;
        let skipped = self.shared.skipped.load(Ordering::Relaxed);
        let len = {
            let mut w = SliceWriter::new(&mut self.stats);
            // A frame too big for the buffer leaves the last stats standing.
            match write_stats(
                &mut w,
                r,
                shot,
                &self.labels,
                &self.window[..self.filled],
                &mut self.scratch[..],
                self.shown,
                skipped,
            ) {
                Ok(()) => Some(w.len()),
                Err(_) => None,
            }
        };
        if let Some(len) = len {
            self.stats_vec.clear();
            self.stats_vec.extend_from_slice(&self.stats[..len]);
        }
        let mut l = lock(&self.shared.latest);
        if let Some(jpeg) = jpeg {
            l.jpeg.clear();
            l.jpeg.extend_from_slice(jpeg);
            l.seq += 1;
        }
        if len.is_some() {
            std::mem::swap(&mut l.stats, &mut self.stats_vec);
        }
        drop(l);
        self.shared.fresh.notify_all();
        Ok(())
    }

    fn end(&mut self) -> Result<(), String> {
        self.shared.clients.stop();
        self.shared.fresh.notify_all();
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
        Ok(())
    }
}
/// The canvas as a JPEG of `quality` (1..=100) into `out` (cleared
/// first). Viewer threads only: the encoder allocates its working buffers
/// (a few times the frame's size, freed before it returns).
pub(crate) fn encode_jpeg(canvas: &Canvas, quality: u8, out: &mut Vec<u8>) -> Result<(), String> {
    out.clear();
    jpeg_encoder::Encoder::new(out, quality)
        .encode(
            &canvas.rgb,
            canvas.width as u16,
            canvas.height as u16,
            jpeg_encoder::ColorType::Rgb,
        )
        .map_err(|e| format!("JPEG encoding: {e}"))
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// `/stats`:
///
/// ```text
/// {"frames_shown":120,"viewer_skipped":3,"dropped_total":0,"fps":29.9,
///  "latency_ms":{"queue":{"p50":0.1,"p99":0.3},"preprocess":{...},
///   "inference":{...},"postprocess":{...},"e2e":{...}},
///  "window":128,"frame":{...the frame's JSON line, see the json output...}}
/// ```
///
/// `fps` and the percentiles are over the last `window` frames the viewer
/// showed; `frame` is the latest one, with its detections. Never allocates.
#[allow(clippy::too_many_arguments)]
pub fn write_stats(
    w: &mut SliceWriter<'_>,
    rec: &FrameRecord,
    shot: &Shot,
    labels: &Labels,
    window: &[[f64; 6]],
    scratch: &mut [f64],
    shown: u64,
    skipped: u64,
) -> std::fmt::Result {
    write!(
        w,
        "{{\"frames_shown\":{shown},\"viewer_skipped\":{skipped},\"dropped_total\":{},\"fps\":",
        rec.dropped_total
    )?;
    let (t_min, t_max) = window
        .iter()
        .fold((f64::MAX, f64::MIN), |(a, b), r| (a.min(r[0]), b.max(r[0])));
    let fps = if window.len() > 1 && t_max > t_min {
        (window.len() - 1) as f64 * 1e3 / (t_max - t_min)
    } else {
        f64::NAN
    };
    num(w, fps as f32, 1)?;
    w.write_str(",\"latency_ms\":{")?;
    for (i, stage) in ["queue", "preprocess", "inference", "postprocess", "e2e"]
        .iter()
        .enumerate()
    {
        let s = &mut scratch[..window.len()];
        for (d, r) in s.iter_mut().zip(window) {
            *d = r[i + 1];
        }
        s.sort_unstable_by(f64::total_cmp);
        let pct = |q: f64| {
            if s.is_empty() {
                f32::NAN
            } else {
                s[((s.len() - 1) as f64 * q).round() as usize] as f32
            }
        };
        if i > 0 {
            w.write_str(",")?;
        }
        write!(w, "\"{stage}\":{{\"p50\":")?;
        num(w, pct(0.5), 3)?;
        w.write_str(",\"p99\":")?;
        num(w, pct(0.99), 3)?;
        w.write_str("}")?;
    }
    write!(w, "}},\"window\":{},\"frame\":", window.len())?;
    // The line ends in "\n": inside a document that is only whitespace.
    write_line(w, rec, &shot.dets, labels)?;
    w.write_str("}")
}

/// One client: one request, one response (the stream lasts until the
/// client goes, stalls past [`WRITE_TIMEOUT`], or the run ends).
fn serve(mut s: TcpStream, shared: &Shared) -> std::io::Result<()> {
    s.set_read_timeout(Some(READ_TIMEOUT))?;
    s.set_write_timeout(Some(WRITE_TIMEOUT))?;
    let _ = s.set_nodelay(true);
    let mut req = [0u8; REQUEST_BYTES];
    let mut n = 0;
    while !req[..n].windows(4).any(|w| w == b"\r\n\r\n") {
        if n == req.len() {
            return respond(
                &mut s,
                "431 Request Header Fields Too Large",
                "text/plain",
                b"",
            );
        }
        let k = s.read(&mut req[n..])?;
        if k == 0 {
            return Ok(());
        }
        n += k;
    }
    let head = std::str::from_utf8(&req[..n]).unwrap_or("");
    let mut parts = head.split_ascii_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    if method != "GET" {
        return respond(
            &mut s,
            "405 Method Not Allowed",
            "text/plain",
            b"GET only\n",
        );
    }
    match path.split('?').next().unwrap_or("") {
        "/" | "/index.html" => respond(
            &mut s,
            "200 OK",
            "text/html; charset=utf-8",
            PAGE.as_bytes(),
        ),
        "/stats" => {
            let body = {
                let l = lock(&shared.latest);
                if l.stats.is_empty() {
                    b"{}".to_vec()
                } else {
                    l.stats.clone()
                }
            };
            respond(&mut s, "200 OK", "application/json", &body)
        }
        "/stream.mjpg" => stream(&mut s, shared),
        _ => respond(&mut s, "404 Not Found", "text/plain", b"not found\n"),
    }
}

fn respond(s: &mut TcpStream, status: &str, ctype: &str, body: &[u8]) -> std::io::Result<()> {
    write!(
        s,
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\n\
         Cache-Control: no-store\r\nConnection: close\r\n\r\n",
        body.len()
    )?;
    s.write_all(body)?;
    s.flush()
}

/// MJPEG: each new frame as one part, the newest whenever the client is
/// ready (frames encoded meanwhile are skipped for this client only).
fn stream(s: &mut TcpStream, shared: &Shared) -> std::io::Result<()> {
    s.write_all(
        b"HTTP/1.1 200 OK\r\nContent-Type: multipart/x-mixed-replace; boundary=frame\r\n\
          Cache-Control: no-store\r\nConnection: close\r\n\r\n",
    )?;
    let mut mine = Vec::new();
    let mut seen = 0u64;
    loop {
        {
            let mut l = lock(&shared.latest);
            while l.seq == seen && !shared.clients.stopped() {
                l = shared
                    .fresh
                    .wait_timeout(l, POLL)
                    .map(|(g, _)| g)
                    .unwrap_or_else(|p| p.into_inner().0);
            }
            if shared.clients.stopped() {
                return Ok(());
            }
            seen = l.seq;
            mine.clear();
            mine.extend_from_slice(&l.jpeg);
        }
        write!(
            s,
            "--frame\r\nContent-Type: image/jpeg\r\nContent-Length: {}\r\n\r\n",
            mine.len()
        )?;
        s.write_all(&mine)?;
        s.write_all(b"\r\n")?;
    }
}
