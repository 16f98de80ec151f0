//! Video replay through the ffmpeg child reads 300 frames (copied and
//! skipped, with their timestamps from ffmpeg's log) with zero heap
//! allocations in this process, counted by the crate's counting allocator
//! over every thread: the capture side (this thread) and the `ffmpeg-log`
//! side thread that parses ffmpeg's stderr. The clip is made by ffmpeg
//! from frames the synthetic source renders.
//!
//! One test per binary, so nothing else allocates concurrently.

mod common;

use perceptd::count_alloc::{allocations, Counting};
use perceptd::source::replay;
use perceptd::source::y4m::Pace;

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn video_replay_reads_300_frames_without_allocating() {
    let dir = common::temp_dir("video-alloc");
    let y4m = dir.join("scene.y4m");
    common::synthetic_y4m(&y4m, 5, 310, 320, 240);
    let clip = dir.join("scene.mp4");
    common::ffmpeg(&[
        "-i",
        y4m.to_str().unwrap(),
        "-c:v",
        "libx264",
        "-pix_fmt",
        "yuv420p",
        clip.to_str().unwrap(),
    ]);
    let mut src = replay::open(&clip, Pace::Fast, 256).unwrap();
    let mut buf = vec![0u8; src.desc().bytes()];
    // Warm-up: the first frames (lazy one-time set-up in std, if any).
    for _ in 0..5 {
        src.next_frame(&mut buf).unwrap();
    }
    let before = allocations();
    let mut stamped = 0;
    for k in 0..300 {
        let st = if k % 3 == 2 {
            src.skip_frame()
        } else {
            src.next_frame(&mut buf)
        }
        .unwrap();
        stamped += st.source_ns.is_some() as u32;
    }
    let n = allocations() - before;
    assert_eq!(stamped, 300, "every frame has its presentation timestamp");
    assert_eq!(n, 0, "{n} allocations over 300 frames");
    drop(src);
    let _ = std::fs::remove_dir_all(&dir);
}
