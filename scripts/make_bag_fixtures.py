#!/usr/bin/env python3
"""Makes tests/fixtures/bag/: ROS 2 bags (MCAP, CDR) of the synthetic scene,
written by the official MCAP writer for ROS 2 (mcap-ros2-support), for
tests/bag_replay.rs.

    python3 -m pip install --target target/bag-py -r scripts/requirements-bags.txt
    cargo build --release --locked
    PYTHONPATH=target/bag-py python3 scripts/make_bag_fixtures.py

The frames are `perceptd synth-dataset --seed 5 --frames N` (BMP, RGB,
640x480): the same frames `SyntheticSource` renders for seed 5 (frame k
is `render(k)`), which the tests turn into the Y4M they compare with.
Header stamps are 1700000000 s + k * 50 ms (20 fps); log times are the
stamps + 1 ms (so a reader that confused them would be caught).

Bags:
  rgb8.mcap        sensor_msgs/msg/Image rgb8, zstd chunks, plus a
                   std_msgs/msg/String topic /chatter in between
  bgr8.mcap        the first 4 frames as bgr8, lz4 chunks
  mono8.mcap       4 frames of Image mono8 (BT.601 luma, integer), rows
                   padded to step = width + 4, uncompressed chunks
  yuyv.mcap        4 frames of Image yuv422_yuy2 (YUYV, BT.601 limited)
  jpeg.mcap        sensor_msgs/msg/CompressedImage format "jpeg" (q 95, 4:4:4)
  png.mcap         CompressedImage format "png", 1 frame of 64x48 (refused by name)
  slow.mcap        3 frames of Image mono8 64x48 whose stamps are 10 s apart
                   (a realtime replay waits: the SIGTERM test)
  rgb16.mcap       Image rgb16, 2 frames of 8x8 (refused by name)
  no_image.mcap    only /chatter (std_msgs/msg/String)
  truncated.mcap   jpeg.mcap cut in the middle of its third chunk
  rosbag2/         a rosbag2 folder: metadata.yaml + rosbag2_0.mcap (yuyv.mcap)
"""
import io
import os
import shutil
import struct
import subprocess
import sys
import tempfile

from mcap.writer import CompressionType
from mcap_ros2.writer import Writer
from PIL import Image

OUT = "tests/fixtures/bag"
FRAMES = 10
SEED = 5
T0 = 1_700_000_000
PERIOD_NS = 50_000_000

TIME = "int32 sec\nuint32 nanosec\n"
HEADER = "builtin_interfaces/Time stamp\nstring frame_id\n"
SEP = "=" * 80 + "\n"
DEPS = SEP + "MSG: std_msgs/Header\n" + HEADER + SEP + "MSG: builtin_interfaces/Time\n" + TIME
IMAGE = (
    "std_msgs/Header header\nuint32 height\nuint32 width\nstring encoding\n"
    "uint8 is_bigendian\nuint32 step\nuint8[] data\n" + DEPS
)
COMPRESSED = "std_msgs/Header header\nstring format\nuint8[] data\n" + DEPS
STRING = "string data\n"


def frames():
    tmp = tempfile.mkdtemp(prefix="bagfix-")
    subprocess.run(
        ["target/release/perceptd", "synth-dataset", "--out", tmp,
         "--seed", str(SEED), "--frames", str(FRAMES)],
        check=True,
    )
    out = []
    for k in range(FRAMES):
        img = Image.open(os.path.join(tmp, "images", f"{k:06}.bmp")).convert("RGB")
        out.append(img)
    shutil.rmtree(tmp)
    return out


def header(k, period_ns=PERIOD_NS):
    ns = k * period_ns
    return {"stamp": {"sec": T0 + ns // 1_000_000_000, "nanosec": ns % 1_000_000_000},
            "frame_id": "camera"}


def log_time(k):
    return T0 * 1_000_000_000 + k * PERIOD_NS + 1_000_000


def luma(img):
    r, g, b = img.split()
    rb, gb, bb = r.tobytes(), g.tobytes(), b.tobytes()
    return bytes((77 * rr + 150 * gg + 29 * bbb + 128) >> 8 for rr, gg, bbb in zip(rb, gb, bb))


def yuyv(img):
    w, h = img.size
    rgb = img.tobytes()
    out = bytearray()
    for y in range(h):
        for x in range(0, w, 2):
            px = []
            for dx in (0, 1):
                i = (y * w + x + dx) * 3
                r, g, b = rgb[i], rgb[i + 1], rgb[i + 2]
                yy = 16 + ((66 * r + 129 * g + 25 * b + 128) >> 8)
                u = 128 + ((-38 * r - 74 * g + 112 * b + 128) >> 8)
                v = 128 + ((112 * r - 94 * g - 18 * b + 128) >> 8)
                px.append((yy, u, v))
            u = (px[0][1] + px[1][1] + 1) // 2
            v = (px[0][2] + px[1][2] + 1) // 2
            out += bytes([px[0][0], u, px[1][0], v])
    return bytes(out)


def image_bag(path, imgs, encoding, compression, chatter=False, n=None, step_pad=0,
              period_ns=PERIOD_NS):
    with open(path, "wb") as f:
        w = Writer(f, compression=compression)
        schema = w.register_msgdef("sensor_msgs/msg/Image", IMAGE)
        sstr = w.register_msgdef("std_msgs/msg/String", STRING) if chatter else None
        for k, img in enumerate(imgs[:n] if n else imgs):
            wd, ht = img.size
            if encoding == "rgb8":
                data, bpp = img.tobytes(), 3
            elif encoding == "bgr8":
                r, g, b = img.split()
                data, bpp = Image.merge("RGB", (b, g, r)).tobytes(), 3
            elif encoding == "mono8":
                data, bpp = luma(img), 1
            elif encoding == "yuv422_yuy2":
                data, bpp = yuyv(img), 2
            elif encoding == "rgb16":
                data, bpp = bytes(wd * ht * 6), 6
            step = wd * bpp + step_pad
            if step_pad:
                data = b"".join(
                    data[y * wd * bpp:(y + 1) * wd * bpp] + b"\xAA" * step_pad for y in range(ht))
            msg = {"header": header(k, period_ns), "height": ht, "width": wd, "encoding": encoding,
                   "is_bigendian": 0, "step": step, "data": data}
            w.write_message("/camera/image_raw", schema, msg, log_time=log_time(k),
                            publish_time=log_time(k), sequence=k)
            if sstr is not None:
                w.write_message("/chatter", sstr, {"data": f"frame {k}"},
                                log_time=log_time(k), publish_time=log_time(k), sequence=k)
        w.finish()


def jpeg_bag(path, imgs, fmt="jpeg", n=None):
    with open(path, "wb") as f:
        # Small chunks (a few JPEGs each), so a cut leaves whole chunks before it.
        w = Writer(f, compression=CompressionType.ZSTD, chunk_size=256 * 1024)
        schema = w.register_msgdef("sensor_msgs/msg/CompressedImage", COMPRESSED)
        for k, img in enumerate(imgs[:n] if n else imgs):
            buf = io.BytesIO()
            if fmt == "jpeg":
                img.save(buf, "JPEG", quality=95, subsampling=0)
            else:
                img.save(buf, "PNG")
            w.write_message("/camera/image_raw/compressed", schema,
                            {"header": header(k), "format": fmt, "data": buf.getvalue()},
                            log_time=log_time(k), publish_time=log_time(k), sequence=k)
        w.finish()


def main():
    os.makedirs(OUT, exist_ok=True)
    imgs = frames()
    image_bag(f"{OUT}/rgb8.mcap", imgs, "rgb8", CompressionType.ZSTD, chatter=True)
    image_bag(f"{OUT}/bgr8.mcap", imgs, "bgr8", CompressionType.LZ4, n=4)
    image_bag(f"{OUT}/mono8.mcap", imgs, "mono8", CompressionType.NONE, n=4, step_pad=4)
    image_bag(f"{OUT}/yuyv.mcap", imgs, "yuv422_yuy2", CompressionType.ZSTD, n=4)
    jpeg_bag(f"{OUT}/jpeg.mcap", imgs)
    jpeg_bag(f"{OUT}/png.mcap", [im.resize((64, 48)) for im in imgs[:1]], fmt="png")
    image_bag(f"{OUT}/slow.mcap", [im.resize((64, 48)) for im in imgs[:3]], "mono8",
              CompressionType.ZSTD, period_ns=10_000_000_000)
    image_bag(f"{OUT}/rgb16.mcap", [im.resize((8, 8)) for im in imgs[:2]], "rgb16",
              CompressionType.ZSTD)
    with open(f"{OUT}/no_image.mcap", "wb") as f:
        w = Writer(f)
        s = w.register_msgdef("std_msgs/msg/String", STRING)
        for k in range(5):
            w.write_message("/chatter", s, {"data": f"hello {k}"}, log_time=log_time(k),
                            publish_time=log_time(k), sequence=k)
        w.finish()
    data = open(f"{OUT}/jpeg.mcap", "rb").read()
    # A few JPEGs to a chunk: cut inside the 3rd chunk, so the frames of
    # the first two come before the fault.
    offsets = chunk_offsets(data)
    cut = (offsets[2] + offsets[3]) // 2
    open(f"{OUT}/truncated.mcap", "wb").write(data[:cut])
    os.makedirs(f"{OUT}/rosbag2", exist_ok=True)
    shutil.copy(f"{OUT}/yuyv.mcap", f"{OUT}/rosbag2/rosbag2_0.mcap")
    with open(f"{OUT}/rosbag2/metadata.yaml", "w") as f:
        f.write(METADATA.format(n=4, start=log_time(0), dur=log_time(3) - log_time(0)))


def chunk_offsets(data):
    """File offsets of the top-level Chunk records (opcode 0x06)."""
    pos, out = 8, []
    while pos + 9 <= len(data):
        op, n = data[pos], struct.unpack_from("<Q", data, pos + 1)[0]
        if op == 0x06:
            out.append(pos)
        if op == 0x0F:
            break
        pos += 9 + n
    return out


METADATA = """rosbag2_bagfile_information:
  version: 5
  storage_identifier: mcap
  duration:
    nanoseconds: {dur}
  starting_time:
    nanoseconds_since_epoch: {start}
  message_count: {n}
  topics_with_message_count:
    - topic_metadata:
        name: /camera/image_raw
        type: sensor_msgs/msg/Image
        serialization_format: cdr
        offered_qos_profiles: ""
      message_count: {n}
  compression_format: ""
  compression_mode: ""
  relative_file_paths:
    - rosbag2_0.mcap
  files:
    - path: rosbag2_0.mcap
      starting_time:
        nanoseconds_since_epoch: {start}
      duration:
        nanoseconds: {dur}
      message_count: {n}
"""

if __name__ == "__main__":
    sys.exit(main())
