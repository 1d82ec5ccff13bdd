#!/usr/bin/python3
"""Rewrites a model folder's model.safetensors as N shards with an index
(model.safetensors.index.json), converting tensors to DTYPE (bf16, f16, f32).
Used to test the loader on the layouts Hugging Face publishes.

usage: reshard.py SRC_DIR DST_DIR N DTYPE
"""
import json
import os
import shutil
import struct
import sys

import numpy as np

src, dst, n, dtype = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
os.makedirs(dst, exist_ok=True)
shutil.copy(os.path.join(src, "config.json"), dst)
raw = open(os.path.join(src, "model.safetensors"), "rb").read()
(hl,) = struct.unpack("<Q", raw[:8])
hdr = json.loads(raw[8:8 + hl])
names = [k for k in hdr if k != "__metadata__"]
tensors = {}
for k in names:
    b, e = hdr[k]["data_offsets"]
    u = np.frombuffer(raw[8 + hl + b: 8 + hl + e], "<u2").astype(np.uint32) << 16
    tensors[k] = (u.view(np.float32).reshape(hdr[k]["shape"]))
conv = {"bf16": ("BF16", None), "f16": ("F16", "<f2"), "f32": ("F32", "<f4")}[dtype]


def encode(a):
    if conv[1] is None:
        u = a.astype(np.float32).view(np.uint32)
        return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype("<u2").tobytes()
    return a.astype(conv[1]).tobytes()


weight_map = {}
for s in range(n):
    part = names[s::n]
    fname = f"model-{s + 1:05d}-of-{n:05d}.safetensors"
    h, blobs, off = {}, [], 0
    for k in part:
        blob = encode(tensors[k])
        h[k] = {"dtype": conv[0], "shape": list(tensors[k].shape), "data_offsets": [off, off + len(blob)]}
        blobs.append(blob)
        off += len(blob)
        weight_map[k] = fname
    hj = json.dumps(h).encode()
    hj += b" " * (-len(hj) % 8)
    with open(os.path.join(dst, fname), "wb") as f:
        f.write(struct.pack("<Q", len(hj)) + hj + b"".join(blobs))
json.dump({"metadata": {}, "weight_map": weight_map}, open(os.path.join(dst, "model.safetensors.index.json"), "w"))
