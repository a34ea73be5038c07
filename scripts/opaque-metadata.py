#!/usr/bin/env python3
"""Reads a JSON-RPC answer of `state_call Metadata_metadata_at_version` on stdin and writes the
metadata bytes (the SCALE `Option<OpaqueMetadata>` unwrapped: tag, compact length) to stdout."""
import json
import sys

answer = json.load(sys.stdin)
if "result" not in answer:
    sys.exit("Metadata_metadata_at_version failed: %s" % answer)
raw = bytes.fromhex(answer["result"][2:])
if not raw or raw[0] != 1:
    sys.exit("the runtime does not serve this metadata version")
mode = raw[1] & 3
if mode == 0:
    length, start = raw[1] >> 2, 2
elif mode == 1:
    length, start = int.from_bytes(raw[1:3], "little") >> 2, 3
elif mode == 2:
    length, start = int.from_bytes(raw[1:5], "little") >> 2, 5
else:
    n = (raw[1] >> 2) + 4
    length, start = int.from_bytes(raw[2:2 + n], "little"), 2 + n
body = raw[start:start + length]
if len(body) != length or body[:4] != b"meta":
    sys.exit("malformed metadata: %d of %d bytes" % (len(body), length))
sys.stdout.buffer.write(body)
