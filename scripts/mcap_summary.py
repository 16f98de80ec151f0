#!/usr/bin/env python3
"""Reads an MCAP file with the official Python `mcap` reader (pip `mcap`,
installed by `scripts/setup.sh --tests` into target/pydeps) and prints one
JSON object: the summary's presence, per topic the schema name, schema and
message encodings and message count, the log times of one topic, and
checks on the first message of each Foxglove channel (JSON parses; the
image's base64 data is a JPEG).

    PYTHONPATH=target/pydeps python3 scripts/mcap_summary.py run.mcap
"""
import base64
import json
import sys

from mcap.reader import make_reader


def main(path):
    out = {"topics": {}, "summary": False, "image_times": [], "first": {}}
    with open(path, "rb") as f:
        reader = make_reader(f)
        summary = reader.get_summary()
        out["summary"] = summary is not None
        if summary is not None and summary.statistics is not None:
            out["statistics_messages"] = summary.statistics.message_count
        for schema, channel, message in reader.iter_messages(log_time_order=False):
            t = out["topics"].setdefault(
                channel.topic,
                {
                    "schema": schema.name if schema else None,
                    "schema_encoding": schema.encoding if schema else None,
                    "message_encoding": channel.message_encoding,
                    "count": 0,
                },
            )
            t["count"] += 1
            msg = json.loads(message.data)
            if channel.topic == "/camera/image":
                out["image_times"].append(message.log_time)
                stamp = msg["timestamp"]["sec"] * 10**9 + msg["timestamp"]["nsec"]
                if stamp != message.log_time:
                    out.setdefault("stamp_mismatch", 0)
                    out["stamp_mismatch"] += 1
            if channel.topic not in out["first"]:
                first = {"keys": sorted(msg.keys())}
                if channel.topic == "/camera/image":
                    jpeg = base64.b64decode(msg["data"])
                    first["jpeg_soi"] = jpeg[:2] == b"\xff\xd8"
                    first["jpeg_bytes"] = len(jpeg)
                    first["format"] = msg["format"]
                    first["frame_id"] = msg["frame_id"]
                out["first"][channel.topic] = first
            if channel.topic == "/camera/annotations" and msg["points"]:
                out["boxes_seen"] = out.get("boxes_seen", 0) + len(msg["points"])
            if channel.topic == "/scene" and msg["entities"]:
                out["scene_entities_seen"] = out.get("scene_entities_seen", 0) + len(
                    msg["entities"]
                )
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1])
