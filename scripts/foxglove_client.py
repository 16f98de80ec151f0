#!/usr/bin/env python3
"""An independent Foxglove WebSocket client (protocol foxglove.websocket.v1)
built on the Python `websockets` library (pip, installed by
`scripts/setup.sh --tests` into target/pydeps): connects, reads
`serverInfo` and `advertise`, subscribes to every advertised channel,
receives binary `messageData` for SECONDS (or until it has MIN messages on
each channel, MIN > 0, or the server closes), checks each message (opcode, subscription id, JSON payload,
base64 JPEG for images) and prints one JSON object with what it got.

    PYTHONPATH=target/pydeps python3 scripts/foxglove_client.py ws://127.0.0.1:8765 SECONDS MIN
"""
import base64
import json
import struct
import sys
import time

from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

SUBPROTOCOL = "foxglove.websocket.v1"


def main(url, seconds, want):
    out = {"counts": {}, "errors": [], "latency_ms": []}
    with connect(url, subprotocols=[SUBPROTOCOL], max_size=None, open_timeout=10) as ws:
        out["subprotocol"] = ws.subprotocol
        info = json.loads(ws.recv(timeout=5))
        out["server_info_op"] = info.get("op")
        adv = json.loads(ws.recv(timeout=5))
        out["advertise_op"] = adv.get("op")
        chans = {c["id"]: c for c in adv["channels"]}
        out["channels"] = {c["topic"]: c["schemaName"] for c in adv["channels"]}
        subs = [{"id": 100 + cid, "channelId": cid} for cid in chans]
        ws.send(json.dumps({"op": "subscribe", "subscriptions": subs}))
        by_sub = {100 + cid: chans[cid]["topic"] for cid in chans}
        t_end = time.monotonic() + seconds
        while time.monotonic() < t_end:
            try:
                m = ws.recv(timeout=max(0.01, t_end - time.monotonic()))
            except TimeoutError:
                break
            except ConnectionClosed:
                out["closed_by_server"] = True
                break
            if isinstance(m, str):
                continue
            op, sub, ts = struct.unpack_from("<BIQ", m, 0)
            if op != 1 or sub not in by_sub:
                out["errors"].append(f"op {op} sub {sub}")
                continue
            topic = by_sub[sub]
            msg = json.loads(m[13:])
            stamp = msg.get("timestamp")
            if stamp is not None and stamp["sec"] * 10**9 + stamp["nsec"] != ts:
                out["errors"].append(f"{topic}: timestamp {stamp} != header {ts}")
            if topic == "/camera/image":
                jpeg = base64.b64decode(msg["data"])
                if jpeg[:2] != b"\xff\xd8":
                    out["errors"].append("image is not a JPEG")
            if topic == "/camera/annotations" and msg["points"]:
                out["boxes"] = out.get("boxes", 0) + len(msg["points"])
            out["counts"][topic] = out["counts"].get(topic, 0) + 1
            if want and len(out["counts"]) == len(chans) and all(
                n >= want for n in out["counts"].values()
            ):
                break
        # Unsubscribe from everything, then close cleanly.
        if not out.get("closed_by_server"):
            ws.send(json.dumps({"op": "unsubscribe", "subscriptionIds": list(by_sub)}))
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1], float(sys.argv[2]), int(sys.argv[3]))
