//! The MCAP recorder (`kind = "mcap"`) and the Foxglove WebSocket server
//! (`kind = "foxglove"`) end to end, through the binary, checked by
//! independent implementations: the official Python `mcap` reader and a
//! Python `websockets` client speaking `foxglove.websocket.v1`
//! (`scripts/mcap_summary.py`, `scripts/foxglove_client.py`; both pip
//! packages are installed by `scripts/setup.sh --tests` into
//! target/pydeps).
//!
//! * A lockstep replay records every frame: each channel has the schema
//!   Foxglove expects and one message per frame, stamped with the frame's
//!   source timestamp; the boxes are the JSON lines' boxes.
//! * SIGTERM during a live run still leaves a finished file (summary).
//! * A client subscribes and receives images and annotations live, while
//!   a stalled client (subscribed, never reads) and one that vanishes do
//!   not hold anything up.
//! * Boot errors: a port in use, an unwritable path, an unknown kind: one
//!   error line each.

mod common;

use common::*;
use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Runs a script from scripts/ with the test Python packages; its stdout
/// is one JSON object.
fn python(script: &str, args: &[&str]) -> serde_json::Value {
    let deps = root().join("target/pydeps");
    let out = Command::new("python3")
        .arg(root().join("scripts").join(script))
        .args(args)
        .env("PYTHONPATH", &deps)
        .output()
        .expect("python3");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{script} failed (are the test packages in {}? run scripts/setup.sh --tests): {err}",
        deps.display()
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{script}: {e}: {}", String::from_utf8_lossy(&out.stdout)))
}

fn write_config(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

const SCHEMAS: [(&str, &str); 5] = [
    ("/camera/image", "foxglove.CompressedImage"),
    ("/camera/annotations", "foxglove.ImageAnnotations"),
    ("/perceptd/metrics", "perceptd.FrameMetrics"),
    ("/scene", "foxglove.SceneUpdate"),
    ("/tf", "foxglove.FrameTransform"),
];

#[test]
fn a_lockstep_recording_has_every_frame_on_every_channel() {
    const FRAMES: u64 = 40;
    let dir = temp_dir("mcap-lockstep");
    let mcap = dir.join("run.mcap");
    let json = dir.join("det.jsonl");
    let cfg = write_config(
        &dir,
        "c.toml",
        &format!(
            "[source]\nkind = \"synthetic\"\npace = \"fast\"\n\
             [calibration]\npath = \"builtin:front_camera\"\n\
             [[output]]\nkind = \"mcap\"\npath = \"{}\"\n\
             [[output]]\nkind = \"json\"\ntarget = \"{}\"\n",
            mcap.display(),
            json.display()
        ),
    );
    let out = common::perceptd()
        .args(["run", "--frames", &FRAMES.to_string(), "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains(&format!(
            "output mcap:{} published {FRAMES} dropped 0",
            mcap.display()
        )),
        "{err}"
    );

    let v = python("mcap_summary.py", &[mcap.to_str().unwrap()]);
    assert_eq!(v["summary"], true, "{v}");
    let topics = v["topics"].as_object().unwrap();
    assert_eq!(topics.len(), SCHEMAS.len(), "{v}");
    for (topic, schema) in SCHEMAS {
        let t = &topics[topic];
        assert_eq!(t["schema"], schema, "{topic}: {v}");
        assert_eq!(t["schema_encoding"], "jsonschema", "{topic}");
        assert_eq!(t["message_encoding"], "json", "{topic}");
        assert_eq!(t["count"], FRAMES, "{topic}: one message per frame");
    }
    assert!(v.get("stamp_mismatch").is_none(), "{v}");
    let first = &v["first"]["/camera/image"];
    assert_eq!(first["jpeg_soi"], true, "{v}");
    assert_eq!(first["frame_id"], "camera_optical");

    // Timestamps are the frames' source timestamps, boxes the JSON's boxes.
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&json)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len() as u64, FRAMES);
    let stamps: Vec<u64> = lines
        .iter()
        .map(|l| l["t_source_ns"].as_u64().unwrap())
        .collect();
    let times: Vec<u64> = v["image_times"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_u64().unwrap())
        .collect();
    assert_eq!(times, stamps);
    let dets: usize = lines
        .iter()
        .map(|l| l["detections"].as_array().unwrap().len())
        .sum();
    let grounded: usize = lines
        .iter()
        .flat_map(|l| l["detections"].as_array().unwrap())
        .filter(|d| !d["ground"].is_null())
        .count();
    assert!(dets > 0 && grounded > 0);
    assert_eq!(v["boxes_seen"], dets as u64, "{v}");
    assert_eq!(v["scene_entities_seen"], grounded as u64, "{v}");
}

#[test]
fn sigterm_during_a_live_recording_leaves_a_finished_file() {
    let dir = temp_dir("mcap-sigterm");
    let mcap = dir.join("run.mcap");
    let cfg = write_config(
        &dir,
        "c.toml",
        &format!(
            "[source]\nkind = \"synthetic\"\npace = \"realtime\"\n\
             [calibration]\npath = \"builtin:front_camera\"\n\
             [[output]]\nkind = \"mcap\"\npath = \"{}\"\n",
            mcap.display()
        ),
    );
    let child = common::perceptd()
        .args(["run", "--frames", "100000", "--config"])
        .arg(&cfg)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while std::fs::metadata(&mcap).map(|m| m.len()).unwrap_or(0) < 1_000_000 {
        assert!(t0.elapsed() < Duration::from_secs(60), "nothing recorded");
        std::thread::sleep(Duration::from_millis(50));
    }
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let (code, err) = wait_bounded(child, Duration::from_secs(10));
    assert_eq!(code, 0, "{err}");
    let v = python("mcap_summary.py", &[mcap.to_str().unwrap()]);
    assert_eq!(v["summary"], true, "no summary after SIGTERM: {v}");
    let counts: Vec<u64> = SCHEMAS
        .iter()
        .map(|(t, _)| v["topics"][t]["count"].as_u64().unwrap_or(0))
        .collect();
    assert!(
        counts[0] > 0 && counts.iter().all(|&c| c == counts[0]),
        "{v}"
    );
    assert_eq!(v["statistics_messages"], counts.iter().sum::<u64>(), "{v}");
}

/// Starts the binary; returns it, the port its log names after `marker`,
/// and the log lines' receiver.
fn spawn_logged(
    args: &[&str],
    marker: &str,
) -> (std::process::Child, u16, std::sync::mpsc::Receiver<String>) {
    let mut child = common::perceptd()
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut log = Vec::new();
    let port = loop {
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("no \"{marker}\" in the log: {log:?}"));
        log.push(line.clone());
        if let Some(rest) = line.split(marker).nth(1) {
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            break digits.parse().unwrap();
        }
    };
    (child, port, rx)
}

#[test]
fn a_websocket_client_receives_images_and_annotations_live() {
    let dir = temp_dir("foxglove-live");
    let cfg = write_config(
        &dir,
        "c.toml",
        "[source]\nkind = \"synthetic\"\npace = \"realtime\"\n\
         [calibration]\npath = \"builtin:front_camera\"\n\
         [[output]]\nkind = \"foxglove\"\nlisten = \"127.0.0.1:0\"\n",
    );
    let (child, port, rx) = spawn_logged(
        &[
            "run",
            "--frames",
            "100000",
            "--config",
            cfg.to_str().unwrap(),
        ],
        "WebSocket server on ws://127.0.0.1:",
    );
    let url = format!("ws://127.0.0.1:{port}");

    // A client that is refused: no subprotocol.
    let refused = tungstenite::connect(url.as_str());
    assert!(refused.is_err(), "a client without the subprotocol got in");

    // A stalled client: subscribes to everything, then never reads.
    let stalled = {
        use tungstenite::client::IntoClientRequest;
        let mut req = url.as_str().into_client_request().unwrap();
        req.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            "foxglove.websocket.v1".parse().unwrap(),
        );
        let (mut ws, _) =
            tungstenite::client(req, TcpStream::connect(("127.0.0.1", port)).unwrap()).unwrap();
        let info = ws.read().unwrap();
        assert!(info.to_text().unwrap().contains("\"serverInfo\""));
        let adv = ws.read().unwrap();
        assert!(adv.to_text().unwrap().contains("\"advertise\""));
        let subs: Vec<String> = (1..=5)
            .map(|c| format!("{{\"id\":{c},\"channelId\":{c}}}"))
            .collect();
        ws.send(tungstenite::Message::text(format!(
            "{{\"op\":\"subscribe\",\"subscriptions\":[{}]}}",
            subs.join(",")
        )))
        .unwrap();
        ws
    };
    // A client that connects and vanishes.
    drop(TcpStream::connect(("127.0.0.1", port)).unwrap());

    // The independent client: every channel, at least 5 messages each.
    let v = python("foxglove_client.py", &[&url, "20", "5"]);
    assert_eq!(v["subprotocol"], "foxglove.websocket.v1", "{v}");
    assert_eq!(v["server_info_op"], "serverInfo");
    assert_eq!(v["advertise_op"], "advertise");
    for (topic, schema) in SCHEMAS {
        assert_eq!(v["channels"][topic], schema, "{v}");
        assert!(
            v["counts"][topic].as_u64().unwrap_or(0) >= 5,
            "{topic}: {v}"
        );
    }
    assert_eq!(v["errors"].as_array().unwrap().len(), 0, "{v}");
    assert!(v["boxes"].as_u64().unwrap_or(0) > 0, "no boxes: {v}");

    // Still serving after the stalled client filled its socket: a second
    // client gets frames too.
    let again = python("foxglove_client.py", &[&url, "10", "3"]);
    assert!(
        again["counts"]["/camera/image"].as_u64().unwrap_or(0) >= 3,
        "{again}"
    );
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let t0 = Instant::now();
    let (code, _) = wait_bounded(child, Duration::from_secs(10));
    assert_eq!(code, 0);
    assert!(
        t0.elapsed() < Duration::from_secs(3),
        "stop took {:?}",
        t0.elapsed()
    );
    drop(stalled);
    let log: Vec<String> = rx.try_iter().collect();
    let last = log.iter().rev().find(|l| l.contains("final:")).unwrap();
    assert!(
        last.contains(&format!("output foxglove:127.0.0.1:{port} published")),
        "{last}"
    );
}

/// Runs `perceptd run --frames 1` on a config; returns its error lines.
fn boot_errors(cfg: &Path) -> Vec<String> {
    let out = common::perceptd()
        .args(["run", "--frames", "1", "--config"])
        .arg(cfg)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    let errors: Vec<String> = err
        .lines()
        .filter(|l| l.starts_with("error"))
        .map(str::to_string)
        .collect();
    assert_eq!(errors.len(), 1, "{err}");
    eprintln!("{}", errors[0]);
    errors
}

#[test]
fn bad_configs_are_one_error_line_each() {
    let dir = temp_dir("foxglove-bad");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let e = boot_errors(&write_config(
        &dir,
        "port.toml",
        &format!(
            "[source]\nkind = \"synthetic\"\n[[output]]\nkind = \"foxglove\"\nlisten = \"127.0.0.1:{port}\"\n"
        ),
    ));
    assert!(
        e[0].contains(&format!("foxglove listen = \"127.0.0.1:{port}\""))
            && e[0].contains("in use"),
        "{e:?}"
    );

    // The parent of the path is a file: no one can create it.
    std::fs::write(dir.join("file"), "").unwrap();
    let bad = dir.join("file").join("run.mcap");
    let e = boot_errors(&write_config(
        &dir,
        "path.toml",
        &format!(
            "[source]\nkind = \"synthetic\"\n[[output]]\nkind = \"mcap\"\npath = \"{}\"\n",
            bad.display()
        ),
    ));
    assert!(
        e[0].contains(&format!("mcap path {}", bad.display())) && e[0].contains("Not a directory"),
        "{e:?}"
    );

    let e = boot_errors(&write_config(
        &dir,
        "kind.toml",
        "[[output]]\nkind = \"rerun\"\n",
    ));
    assert!(
        e[0].contains("kind.toml")
            && e[0].contains("output[0]")
            && e[0].contains("rerun")
            && e[0].contains("mcap")
            && e[0].contains("foxglove"),
        "{e:?}"
    );

    let e = boot_errors(&write_config(
        &dir,
        "listen.toml",
        "[[output]]\nkind = \"foxglove\"\nlisten = \"localhost\"\n",
    ));
    assert!(
        e[0].contains("listen.toml: output.listen = \"localhost\""),
        "{e:?}"
    );
}
