use super::*;

fn img<'a>(enc: &'a [u8], w: u32, h: u32, step: u32, data: &'a [u8]) -> cdr::ImageMsg<'a> {
    cdr::ImageMsg {
        stamp: cdr::Stamp::default(),
        height: h,
        width: w,
        encoding: enc,
        is_bigendian: 0,
        step,
        data,
    }
}

#[test]
fn bgr8_rows_with_padding_become_rgb24() {
    let desc = FrameDesc {
        format: PixelFormat::Rgb24,
        width: 2,
        height: 2,
    };
    // step 8: 6 pixel bytes and 2 padding bytes a row.
    let data = [1, 2, 3, 4, 5, 6, 99, 99, 7, 8, 9, 10, 11, 12, 99, 99];
    let mut dst = [0u8; 12];
    copy_image(Raw::Bgr8, desc, &img(b"bgr8", 2, 2, 8, &data), &mut dst).unwrap();
    assert_eq!(dst, [3, 2, 1, 6, 5, 4, 9, 8, 7, 12, 11, 10]);
    copy_image(Raw::Rgb8, desc, &img(b"rgb8", 2, 2, 8, &data), &mut dst).unwrap();
    assert_eq!(dst, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
}

#[test]
fn a_frame_unlike_the_first_is_a_bad_frame_not_a_panic() {
    let desc = FrameDesc {
        format: PixelFormat::Grey,
        width: 4,
        height: 2,
    };
    let mut dst = [0u8; 8];
    let d = [0u8; 8];
    let bad =
        |i: cdr::ImageMsg<'_>, dst: &mut [u8]| copy_image(Raw::Mono8, desc, &i, dst).unwrap_err();
    assert!(bad(img(b"mono8", 5, 2, 5, &[0; 10]), &mut dst).contains("differs"));
    assert!(bad(img(b"rgb8", 4, 2, 12, &[0; 24]), &mut dst).contains("differs"));
    assert!(bad(img(b"mono8", 4, 2, 3, &d), &mut dst).contains("step"));
    assert!(bad(img(b"mono8", 4, 2, 4, &d[..7]), &mut dst).contains("shorter"));
    assert!(bad(img(b"mono8", 4, 2, 4, &d), &mut dst[..7]).contains("shorter"));
    copy_image(Raw::Mono8, desc, &img(b"mono8", 4, 2, 4, &d), &mut dst).unwrap();
}

#[test]
fn ros_encoding_names() {
    // ROS image_encodings: "yuv422" is UYVY, "yuv422_yuy2" is YUYV.
    assert_eq!(Raw::of(b"yuv422").map(Raw::format), Some(PixelFormat::Uyvy));
    assert_eq!(Raw::of(b"uyvy").map(Raw::format), Some(PixelFormat::Uyvy));
    assert_eq!(
        Raw::of(b"yuv422_yuy2").map(Raw::format),
        Some(PixelFormat::Yuyv)
    );
    assert_eq!(Raw::of(b"yuyv").map(Raw::format), Some(PixelFormat::Yuyv));
    for refused in [&b"rgb16"[..], b"bayer_rggb8", b"16UC1", b"RGB8", b""] {
        assert_eq!(Raw::of(refused), None);
    }
}

#[test]
fn a_corrupt_chunk_is_one_bad_record_and_reading_goes_on() {
    // magic, a zstd chunk whose records are garbage, an unchunked
    // message, DataEnd.
    let mut f = MAGIC.to_vec();
    let mut chunk = Vec::new();
    chunk.extend(0u64.to_le_bytes());
    chunk.extend(0u64.to_le_bytes());
    chunk.extend(16u64.to_le_bytes()); // uncompressed size
    chunk.extend(0u32.to_le_bytes()); // crc
    chunk.extend(4u32.to_le_bytes());
    chunk.extend(b"zstd");
    chunk.extend(5u64.to_le_bytes());
    chunk.extend([1, 2, 3, 4, 5]);
    f.push(records::OP_CHUNK);
    f.extend((chunk.len() as u64).to_le_bytes());
    f.extend(&chunk);
    let mut msg = Vec::new();
    msg.extend(7u16.to_le_bytes());
    msg.extend(0u32.to_le_bytes());
    msg.extend(42u64.to_le_bytes());
    msg.extend(42u64.to_le_bytes());
    msg.extend(b"data");
    f.push(OP_MESSAGE);
    f.extend((msg.len() as u64).to_le_bytes());
    f.extend(&msg);
    f.push(records::OP_DATA_END);
    f.extend(4u64.to_le_bytes());
    f.extend([0; 4]);
    let path = std::env::temp_dir().join(format!("perceptd-bag-unit-{}.mcap", std::process::id()));
    std::fs::write(&path, &f).unwrap();
    let file = File::open(&path).unwrap();
    let mut r = RecordReader::new(file, f.len() as u64, 64, 64).unwrap();
    assert_eq!(
        r.next_record().unwrap(),
        Next::Bad("zstd chunk does not decompress")
    );
    let Next::Rec(rec) = r.next_record().unwrap() else {
        panic!("no message")
    };
    let (h, data) = r.message(&rec).unwrap();
    assert_eq!((h.channel, h.log_time, data), (7, 42, &b"data"[..]));
    assert_eq!(r.next_record().unwrap(), Next::End);
    assert_eq!(r.next_record().unwrap(), Next::End);
    // Cut inside the message: truncated, naming the record.
    let cut = f.len() - 13 - 5;
    let file = File::open(&path).unwrap();
    let mut r = RecordReader::new(file, cut as u64, 64, 64).unwrap();
    assert_eq!(
        r.next_record().unwrap(),
        Next::Bad("zstd chunk does not decompress")
    );
    assert!(matches!(r.next_record(), Err(Fault::Truncated { .. })));
    let _ = std::fs::remove_file(&path);
}
