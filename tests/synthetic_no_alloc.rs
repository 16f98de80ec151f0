//! Proves that the synthetic source's frame path (`next_frame`,
//! `skip_frame`, `render`) never allocates, with the counting global
//! allocator, counting the test's own thread only. Its own test binary, so
//! the allocator does not affect other tests.

use perceptd::count_alloc::{thread_allocations, Counting};
use perceptd::frame::PixelFormat;
use perceptd::source::synthetic::{SyntheticConfig, SyntheticSource};
use perceptd::source::Source;

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn synthetic_frame_path_never_allocates() {
    // The counter itself works.
    let a0 = thread_allocations();
    let v: Vec<u8> = Vec::with_capacity(std::hint::black_box(16));
    drop(v);
    assert!(thread_allocations() > a0);

    for format in [
        PixelFormat::Rgb24,
        PixelFormat::Yuyv,
        PixelFormat::Nv12,
        PixelFormat::I420,
    ] {
        let mut config = SyntheticConfig::front_camera(3);
        config.format = format;
        config.max_objects = 32;
        let mut src = SyntheticSource::new(config).unwrap();
        let mut buf = vec![0u8; src.desc().bytes()];
        let a0 = thread_allocations();
        for k in 0..60 {
            src.next_frame(&mut buf).unwrap();
            src.skip_frame().unwrap();
            src.render(1000 + k * 7, &mut buf).unwrap();
        }
        assert_eq!(
            thread_allocations() - a0,
            0,
            "{format:?}: allocations on the frame path"
        );
    }
}
