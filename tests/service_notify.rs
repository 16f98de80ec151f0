//! The service protocol end to end: a fake `NOTIFY_SOCKET` (a unix datagram
//! socket bound in a temp dir, or an abstract name) receives what perceptd
//! tells systemd. `READY=1` comes after the first frame, `WATCHDOG=1` at
//! least every half period while frames complete, `STATUS=` with fps and
//! latency, `STOPPING=1` at the end; the pings stop when a stage hangs, and
//! a frame held past the hard deadline ends the process with exit code 5.
//!
//! The only test double is `HangBackend`, a fault injected at the backend
//! (hardware) boundary: the real CPU backend that blocks after K frames
//! until released, standing in for a hung accelerator.

mod common;

use common::*;
use perceptd::backend::{Backend, InferTiming};
use perceptd::boot::{boot, Overrides};
use perceptd::config::{Config, SourceConfig};
use perceptd::pipeline::Pipeline;
use perceptd::preprocess::LetterboxInfo;
use perceptd::service::Notifier;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

const MODEL: &str = "tests/fixtures/exports/yolov8-w0125-static/model.onnx";

fn realtime_config(fps: u32) -> String {
    format!(
        "[source]\nkind = \"synthetic\"\npace = \"realtime\"\nfps = {fps}\n\
         [model]\npath = \"{MODEL}\"\nthreads = 1\n[metrics]\ninterval_s = 0\n"
    )
}

#[derive(Debug, Clone)]
struct Msg {
    at: Instant,
    text: String,
}

/// Collects datagrams on `sock` until `STOPPING=1` or `max` elapsed.
fn collect(sock: UnixDatagram, max: Duration) -> std::thread::JoinHandle<Vec<Msg>> {
    sock.set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    std::thread::spawn(move || {
        let t0 = Instant::now();
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        while t0.elapsed() < max {
            if let Ok(n) = sock.recv(&mut buf) {
                let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                let stop = text.contains("STOPPING=1");
                out.push(Msg {
                    at: Instant::now(),
                    text,
                });
                if stop {
                    break;
                }
            }
        }
        out
    })
}

fn bind(dir: &Path) -> (String, UnixDatagram) {
    let path = dir.join("notify.sock");
    let sock = UnixDatagram::bind(&path).unwrap();
    (path.display().to_string(), sock)
}

fn pings(msgs: &[Msg]) -> Vec<Instant> {
    msgs.iter()
        .filter(|m| m.text == "WATCHDOG=1")
        .map(|m| m.at)
        .collect()
}

fn boot_with(cfg_text: &str, frames: u64, out: &Path) -> Pipeline {
    let ov = Overrides {
        frames: Some(frames),
        output: Some(out.display().to_string()),
        ..Default::default()
    };
    boot(&config(cfg_text), &ov).unwrap_or_else(|e| panic!("boot: {e}"))
}

#[test]
fn ready_after_first_frame_then_periodic_watchdog_status_and_stopping() {
    let dir = temp_dir("notify-periodic");
    let (path, sock) = bind(&dir);
    let rx = collect(sock, Duration::from_secs(60));
    let mut p = boot_with(&realtime_config(30), 90, &dir.join("out.jsonl"));
    let period = Duration::from_secs(1);
    p.service.notifier = Notifier::connect(&path, Some(period.as_micros() as u64)).unwrap();
    let t_run = Instant::now();
    let report = p.run(Arc::new(AtomicBool::new(false)));
    let msgs = rx.join().unwrap();
    let texts: Vec<&str> = msgs.iter().map(|m| m.text.as_str()).collect();
    // A paced source is live: on a loaded machine some frames are dropped.
    let c = report.metrics.counters().values();
    assert!(c.processed >= 30, "{c:?}");

    let first = &msgs[0];
    assert!(
        first.text.starts_with("READY=1\nSTATUS="),
        "first message: {texts:?}"
    );
    assert!(
        first.text.contains(" 1 frames") || first.text.contains("frames"),
        "{texts:?}"
    );
    assert!(first.at > t_run);
    assert_eq!(texts.last(), Some(&"STOPPING=1"), "{texts:?}");
    assert_eq!(texts.iter().filter(|t| t.starts_with("READY=1")).count(), 1);

    // Pings at least every half period from READY until the frames end
    // (90 frames at 30 fps: about 3 s).
    let p = pings(&msgs);
    assert!(p.len() >= 6, "{} pings in 3 s: {texts:?}", p.len());
    let mut prev = first.at;
    for &t in &p {
        assert!(
            t - prev <= period / 2,
            "{:?} between pings (period {period:?})",
            t - prev
        );
        prev = t;
    }
    let status: Vec<&&str> = texts
        .iter()
        .filter(|t| t.starts_with("STATUS=") && t.contains(" fps, e2e "))
        .collect();
    assert!(
        !status.is_empty(),
        "no STATUS with fps and latency: {texts:?}"
    );
    assert!(status[0].contains(" ms;"), "{status:?}");
}

/// Test double at the backend boundary: the real backend, blocking after
/// `after` frames until `release` is set (a hung accelerator).
struct HangBackend {
    inner: Box<dyn Backend>,
    after: u64,
    done: u64,
    gate: Arc<(Mutex<bool>, Condvar)>,
    hung_at_ns: Arc<AtomicU64>,
}

impl Backend for HangBackend {
    fn describe(&self) -> String {
        format!(
            "{} + test hang after {} frames",
            self.inner.describe(),
            self.after
        )
    }
    fn input_size(&self) -> [usize; 2] {
        self.inner.input_size()
    }
    fn letterbox(&self) -> LetterboxInfo {
        self.inner.letterbox()
    }
    fn output_shape(&self) -> &[usize] {
        self.inner.output_shape()
    }
    fn infer(&mut self, slot: usize, frame: &[u8], out: &mut [f32]) -> InferTiming {
        self.done += 1;
        if self.done == self.after {
            self.hung_at_ns
                .store(perceptd::source::monotonic_ns(), Ordering::SeqCst);
            let (lock, cv) = &*self.gate;
            let mut released = lock.lock().unwrap();
            while !*released {
                released = cv.wait(released).unwrap();
            }
        }
        self.inner.infer(slot, frame, out)
    }
}

type Gate = Arc<(Mutex<bool>, Condvar)>;

/// Puts a `HangBackend` around the pipeline's backend.
fn hang(mut p: Pipeline, after: u64) -> (Pipeline, Gate, Arc<AtomicU64>) {
    let gate = Arc::new((Mutex::new(false), Condvar::new()));
    let hung_at = Arc::new(AtomicU64::new(0));
    p.backend = Box::new(HangBackend {
        inner: p.backend,
        after,
        done: 0,
        gate: Arc::clone(&gate),
        hung_at_ns: Arc::clone(&hung_at),
    });
    (p, gate, hung_at)
}

#[test]
fn pings_stop_while_a_stage_hangs_and_the_miss_is_counted() {
    let dir = temp_dir("notify-hang");
    let (path, sock) = bind(&dir);
    let rx = collect(sock, Duration::from_secs(60));
    let mut p = boot_with(&realtime_config(30), 1_000_000, &dir.join("out.jsonl"));
    let period = Duration::from_millis(400);
    p.service.notifier = Notifier::connect(&path, Some(period.as_micros() as u64)).unwrap();
    p.service.stage_deadline_ns = 100_000_000;
    let (p, gate, hung_at) = hang(p, 20);
    let stop = Arc::new(AtomicBool::new(false));
    let stop_run = Arc::clone(&stop);
    let run = std::thread::spawn(move || p.run(stop_run));
    while hung_at.load(Ordering::SeqCst) == 0 {
        std::thread::sleep(Duration::from_millis(10));
    }
    let hung = Instant::now();
    // Four watchdog periods of a hung inference stage.
    std::thread::sleep(period * 4);
    *gate.0.lock().unwrap() = true;
    gate.1.notify_all();
    std::thread::sleep(period * 2);
    stop.store(true, Ordering::SeqCst);
    let report = run.join().unwrap();
    let msgs = rx.join().unwrap();
    let texts: Vec<&str> = msgs.iter().map(|m| m.text.as_str()).collect();
    let p = pings(&msgs);
    assert!(
        p.iter().any(|&t| t < hung),
        "pings before the hang: {texts:?}"
    );
    // A frame that completed just before the hang may still be pinged one
    // ping interval later; after that, silence until the stage is released.
    let silent_from = hung + period / 2;
    let silent_to = hung + period * 4;
    let during: Vec<_> = p
        .iter()
        .filter(|&&t| t > silent_from && t < silent_to)
        .collect();
    assert!(
        during.is_empty(),
        "{} pings while inference hung: {texts:?}",
        during.len()
    );
    assert!(p.iter().any(|&t| t > silent_to), "pings resume: {texts:?}");
    let c = report.metrics.counters().values();
    assert!(
        c.deadline_misses >= 1,
        "the hung frame is a deadline miss: {c:?}"
    );
    assert_eq!(texts.last(), Some(&"STOPPING=1"));
}

/// Runs in a child process (see the test below): a stage hangs and the
/// hard deadline must end the process with exit code 5.
#[test]
#[ignore = "helper: run by hard_deadline_exits_with_code_5 in a child process"]
fn hard_deadline_child() {
    let dir = temp_dir("notify-hard-child");
    let mut p = boot_with(&realtime_config(30), 1_000_000, &dir.join("out.jsonl"));
    p.service.stage_deadline_ns = 100_000_000;
    p.service.hard_deadline_ns = 300_000_000;
    let (p, _gate, _) = hang(p, 5);
    p.run(Arc::new(AtomicBool::new(false)));
    panic!("the pipeline returned although a stage hung past the hard deadline");
}

#[test]
fn hard_deadline_exits_with_code_5() {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--ignored", "--exact", "hard_deadline_child", "--nocapture"])
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(5), "stderr: {stderr}");
    assert!(
        stderr.contains("the inference stage held one frame for")
            && stderr.contains("pipeline.hard_deadline_ms = 300"),
        "{stderr}"
    );
}

/// The real binary under a fake systemd: abstract NOTIFY_SOCKET, SIGTERM.
#[test]
fn binary_notifies_ready_watchdog_and_stopping_on_sigterm() {
    use std::os::linux::net::SocketAddrExt;
    let dir = temp_dir("notify-binary");
    let cfg = dir.join("c.toml");
    std::fs::write(
        &cfg,
        realtime_config(30).replace(MODEL, &root().join(MODEL).display().to_string()),
    )
    .unwrap();
    let name = format!("perceptd-test-notify-{}", std::process::id());
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    let sock = UnixDatagram::bind_addr(&addr).unwrap();
    let rx = collect(sock, Duration::from_secs(60));
    let child = common::perceptd()
        .args(["run", "--config", cfg.to_str().unwrap(), "--output"])
        .arg(dir.join("out.jsonl"))
        .env("NOTIFY_SOCKET", format!("@{name}"))
        .env("WATCHDOG_USEC", "1000000")
        .env("RUST_LOG", "warn")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Frames flowing (boot done, the signal handler installed), then a
    // few watchdog periods.
    let t0 = Instant::now();
    while std::fs::read_to_string(dir.join("out.jsonl")).map_or(0, |t| t.lines().count()) < 30
        && t0.elapsed() < Duration::from_secs(30)
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(2500));
    // SAFETY: signalling our own child, which is still running.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    let out = child.wait_with_output().unwrap();
    let msgs = rx.join().unwrap();
    let texts: Vec<&str> = msgs.iter().map(|m| m.text.as_str()).collect();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(texts[0].starts_with("READY=1\n"), "{texts:?}");
    assert!(pings(&msgs).len() >= 2, "{texts:?}");
    assert_eq!(texts.last(), Some(&"STOPPING=1"), "{texts:?}");
    assert!(stderr.contains("final: frames"), "{stderr}");
}

/// The config the install script puts in /etc/perceptd is valid.
#[test]
fn installed_service_config_parses() {
    let text = std::fs::read_to_string(root().join("systemd/default.toml"))
        .unwrap()
        .replace("@SHARE@", &root().display().to_string());
    let c = Config::parse(&text, "systemd/default.toml", &root()).unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(
        &c.source,
        SourceConfig::V4l2 {
            absent: perceptd::source::v4l2::Absent::Wait,
            ..
        }
    ));
    assert!(c.rt.mlockall);
    assert!(c.pipeline.hard_deadline_ms > c.pipeline.stage_deadline_ms);
    assert!(root().join("models/perceptd-synth.onnx").exists());
    assert!(c.model.path.ends_with("models/perceptd-synth.onnx"));
}
