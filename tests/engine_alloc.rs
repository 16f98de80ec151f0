//! `CpuModel::run` makes zero heap allocations: a counting global allocator
//! sees every allocation on every thread (the kernel pool's workers
//! included) while a real exported detector runs 200 times: YOLOv8,
//! the NMS-free end-to-end heads of YOLO26 and YOLOv10, YOLOX (raw and
//! decoded heads) and RT-DETR, each output of the last two also going
//! through perceptd's decoder for the family every run.
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
        // RT-DETR: GridSample, LayerNormalization, run-time Gather indices
        // and bools (Less/Xor/Equal/Not/And/Where).
        ("rtdetr-tiny-static", 1),
        ("rtdetr-tiny-static", 2),
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
        // The families with a decoder of their own: it runs on every output
        // too, inside the counted loop: (kind, conf, max_detections, input).
        let family = match model {
            "yolox-w0125-raw" => Some((DecoderKind::YoloX, 0.25, 300, [128, 96])),
            "yolox-w0125-decoded" => Some((DecoderKind::YoloXDecoded, 0.25, 300, [128, 96])),
            "rtdetr-tiny-static" => Some((DecoderKind::RtDetr, 0.4, 100, [160, 160])),
            _ => None,
        };
        let shape = m.outputs()[0].shape.clone();
        let mut decoder = family.map(|(k, conf, max, input)| {
            let d = Decoder::new(k, &shape, Some(3), conf, 0.45, max, 30_000)
                .and_then(|d| d.with_input_size(input))
                .unwrap();
            let list = d.new_list();
            (d, list, LetterboxInfo::identity(input[0], input[1]))
        });
        let mut kept = 0;
        let mut frame = |m: &mut perceptd::engine::CpuModel| {
            m.run();
            if let Some((d, list, letterbox)) = decoder.as_mut() {
                kept = d.decode(m.output(0), letterbox, list).unwrap().kept;
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
        if family.is_some() {
            assert!(kept > 0, "{model}: the decoder kept no detections");
        }
        let bad = m.output(0).iter().filter(|x| !x.is_finite()).count();
        assert_eq!(
            bad,
            0,
            "{model} threads {threads}: {bad} non-finite outputs of {}",
            m.output(0).len()
        );
        if decoder.is_some() {
            assert!(kept > 0, "{model}: the rtdetr decoder kept nothing");
        }
    }
}
