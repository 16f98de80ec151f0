//! `CpuModel::run` makes zero heap allocations: a counting global allocator
//! sees every allocation on every thread (the kernel pool's workers
//! included) while a real exported detector runs 200 times: YOLOv8, the
//! NMS-free end-to-end heads of YOLO26 and YOLOv10, and RT-DETR (whose
//! output also goes through the `rtdetr` decoder each run).
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
        for _ in 0..3 {
            m.run();
        }
        let mut decoder = model.starts_with("rtdetr").then(|| {
            let mut d = Decoder::new(
                DecoderKind::RtDetr,
                &[1, 300, 6],
                Some(3),
                0.4,
                0.45,
                100,
                100,
            )
            .unwrap();
            d.set_input_size(160, 160);
            let list = d.new_list();
            (d, list, LetterboxInfo::identity(320, 240))
        });
        let mut kept = 0;
        let before = allocations();
        for _ in 0..200 {
            m.run();
            if let Some((d, list, lb)) = &mut decoder {
                kept += d.decode(m.output(0), lb, list).unwrap().kept;
            }
        }
        let after = allocations();
        assert_eq!(
            after - before,
            0,
            "{model} with {threads} threads allocated {} times in 200 runs",
            after - before
        );
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
