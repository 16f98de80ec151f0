//! `CpuModel::run` makes zero heap allocations: a counting global allocator
//! sees every allocation on every thread (the kernel pool's workers
//! included) while a real exported detector runs 200 times: YOLOv8,
//! the NMS-free end-to-end heads of YOLO26 and YOLOv10, and YOLOX (raw
//! and decoded heads, each output then decoded by perceptd's YOLOX decoder).
//!
//! One test per binary, so nothing else allocates concurrently.

use perceptd::engine::{build_cpu_model, Bindings, Limits};
use perceptd::postprocess::{Decoder, DecoderKind, LetterboxInfo};
use std::path::Path;

use perceptd::count_alloc::{allocations, Counting};

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn run_never_allocates() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/exports");
    for (model, threads) in [
        ("yolov8-w0125-static", 1),
        ("yolov8-w0125-static", 2),
        ("yolov8-w0125-dynamic", 2),
        // NMS-free end-to-end heads: TopK (in-place selection in scratch),
        // GatherElements, run-time integer Div/Mod/Cast.
        ("yolo26-w0125-static", 1),
        ("yolo26-w0125-static", 2),
        ("yolov10-w0125-static", 2),
        // YOLOX, raw head and decoded in the graph (Exp, strided Slice);
        // its decoder runs on every output too.
        ("yolox-w0125-raw", 1),
        ("yolox-w0125-raw", 2),
        ("yolox-w0125-decoded", 2),
    ] {
        let mut b = Bindings::new();
        if model.ends_with("dynamic") {
            b.shapes.push(Some(vec![1, 3, 96, 128]));
        }
        let mut m = build_cpu_model(
            &dir.join(model).join("model.onnx"),
            &b,
            threads,
            &Limits::default(),
        )
        .unwrap_or_else(|e| panic!("{model}: {e}"));
        for (i, v) in m.input_mut(0).iter_mut().enumerate() {
            *v = (i % 255) as f32 / 255.0;
        }
        let yolox = match model {
            "yolox-w0125-raw" => Some(DecoderKind::YoloX),
            "yolox-w0125-decoded" => Some(DecoderKind::YoloXDecoded),
            _ => None,
        };
        let shape = m.outputs()[0].shape.clone();
        let mut decoder = yolox.map(|k| {
            let d = Decoder::new(k, &shape, Some(3), 0.25, 0.45, 300, 30_000)
                .and_then(|d| d.with_input_size([128, 96]))
                .unwrap();
            let list = d.new_list();
            (d, list)
        });
        let letterbox = LetterboxInfo::identity(128, 96);
        let mut kept = 0;
        let mut frame = |m: &mut perceptd::engine::CpuModel| {
            m.run();
            if let Some((d, list)) = decoder.as_mut() {
                kept = d.decode(m.output(0), &letterbox, list).unwrap().kept;
            }
        };
        for _ in 0..3 {
            frame(&mut m);
        }
        let before = allocations();
        for _ in 0..200 {
            frame(&mut m);
        }
        let after = allocations();
        assert_eq!(
            after - before,
            0,
            "{model} with {threads} threads allocated {} times in 200 runs",
            after - before
        );
        if yolox.is_some() {
            assert!(kept > 0, "{model}: the decoder kept no detections");
        }
        let bad = m.output(0).iter().filter(|x| !x.is_finite()).count();
        assert_eq!(
            bad,
            0,
            "{model} threads {threads}: {bad} non-finite outputs of {}",
            m.output(0).len()
        );
    }
}
