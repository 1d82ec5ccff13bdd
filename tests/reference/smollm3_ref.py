#!/usr/bin/python3
"""Independent float64 NumPy reference of SmolLM3's forward pass (SPEC sections 2 and 6).

Reads a Hugging Face model folder (config.json + model.safetensors or a sharded
index) on its own, with no code shared with the C engine, and writes the logits
of every position as float32 (positions x vocab) or compares them with a file.

usage: smollm3_ref.py MODEL_DIR "ids" OUT.f32
"""
import json
import math
import os
import struct
import sys

import numpy as np


def load_safetensors(path):
    with open(path, "rb") as f:
        raw = f.read()
    (hlen,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + hlen])
    base = 8 + hlen
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        b, e = info["data_offsets"]
        buf = raw[base + b: base + e]
        shape = info["shape"]
        dt = info["dtype"]
        if dt == "BF16":
            u = np.frombuffer(buf, dtype="<u2").astype(np.uint32) << 16
            arr = u.view(np.float32).astype(np.float64)
        elif dt == "F16":
            arr = np.frombuffer(buf, dtype="<f2").astype(np.float64)
        elif dt == "F32":
            arr = np.frombuffer(buf, dtype="<f4").astype(np.float64)
        else:
            raise ValueError(f"dtype {dt}")
        out[name] = arr.reshape(shape)
    return out


def load_model(d):
    cfg = json.load(open(os.path.join(d, "config.json")))
    idx = os.path.join(d, "model.safetensors.index.json")
    w = {}
    if os.path.exists(idx):
        for shard in sorted(set(json.load(open(idx))["weight_map"].values())):
            w.update(load_safetensors(os.path.join(d, shard)))
    else:
        w = load_safetensors(os.path.join(d, "model.safetensors"))
    return cfg, w


def rope_inv_freq(cfg, head_dim):
    theta = cfg.get("rope_theta", 2e6)
    inv = 1.0 / theta ** (np.arange(0, head_dim, 2, dtype=np.float64) / head_dim)
    rs = cfg.get("rope_scaling")
    attn = 1.0
    if rs and (rs.get("rope_type") or rs.get("type")) == "yarn":
        factor = rs["factor"]
        L = rs.get("original_max_position_embeddings") or cfg["max_position_embeddings"]
        bf, bs = rs.get("beta_fast") or 32, rs.get("beta_slow") or 1

        def corr_dim(r):
            return head_dim * math.log(L / (r * 2 * math.pi)) / (2 * math.log(theta))

        low = max(math.floor(corr_dim(bf)), 0)
        high = min(math.ceil(corr_dim(bs)), head_dim - 1)
        if low == high:
            high += 0.001
        ramp = np.clip((np.arange(head_dim // 2) - low) / (high - low), 0, 1)
        inv = (inv / factor) * ramp + inv * (1 - ramp)
        attn = rs.get("attention_factor") or (0.1 * math.log(factor) + 1.0 if factor > 1 else 1.0)
    return inv, attn


def rmsnorm(x, w, eps):
    return w * (x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps))


def forward(cfg, w, ids):
    H = cfg["hidden_size"]
    nh = cfg["num_attention_heads"]
    nkv = cfg.get("num_key_value_heads", nh)
    hd = cfg.get("head_dim") or H // nh
    nl = cfg["num_hidden_layers"]
    eps = cfg.get("rms_norm_eps", 1e-6)
    use_rope = cfg.get("no_rope_layers")
    if use_rope is None:
        iv = cfg.get("no_rope_layer_interval", 4)
        use_rope = [int((i + 1) % iv != 0) for i in range(nl)]
    inv, attn_factor = rope_inv_freq(cfg, hd)
    T = len(ids)
    pos = np.arange(T, dtype=np.float64)
    ang = np.outer(pos, inv)                     # (T, hd/2)
    cos = np.concatenate([np.cos(ang)] * 2, -1) * attn_factor
    sin = np.concatenate([np.sin(ang)] * 2, -1) * attn_factor

    def rot(x):                                  # x: (heads, T, hd), half-split layout
        x1, x2 = x[..., : hd // 2], x[..., hd // 2:]
        return x * cos + np.concatenate([-x2, x1], -1) * sin

    x = w["model.embed_tokens.weight"][ids]      # (T, H)
    mask = np.triu(np.full((T, T), -np.inf), 1)
    for l in range(nl):
        p = f"model.layers.{l}."
        h = rmsnorm(x, w[p + "input_layernorm.weight"], eps)
        q = (h @ w[p + "self_attn.q_proj.weight"].T).reshape(T, nh, hd).transpose(1, 0, 2)
        k = (h @ w[p + "self_attn.k_proj.weight"].T).reshape(T, nkv, hd).transpose(1, 0, 2)
        v = (h @ w[p + "self_attn.v_proj.weight"].T).reshape(T, nkv, hd).transpose(1, 0, 2)
        if use_rope[l]:
            q, k = rot(q), rot(k)
        k = np.repeat(k, nh // nkv, axis=0)      # query head h reads kv head h // group
        v = np.repeat(v, nh // nkv, axis=0)
        s = q @ k.transpose(0, 2, 1) / math.sqrt(hd) + mask
        s = np.exp(s - s.max(-1, keepdims=True))
        s /= s.sum(-1, keepdims=True)
        o = (s @ v).transpose(1, 0, 2).reshape(T, nh * hd)
        x = x + o @ w[p + "self_attn.o_proj.weight"].T
        h = rmsnorm(x, w[p + "post_attention_layernorm.weight"], eps)
        g = h @ w[p + "mlp.gate_proj.weight"].T
        u = h @ w[p + "mlp.up_proj.weight"].T
        x = x + ((g / (1 + np.exp(-g))) * u) @ w[p + "mlp.down_proj.weight"].T
    x = rmsnorm(x, w["model.norm.weight"], eps)
    tied = cfg.get("tie_word_embeddings", True)
    head = w["model.embed_tokens.weight"] if tied else w["lm_head.weight"]
    return x @ head.T


def main():
    if len(sys.argv) != 4:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    cfg, w = load_model(sys.argv[1])
    ids = [int(t) for t in sys.argv[2].replace(",", " ").split()]
    logits = forward(cfg, w, ids)
    logits.astype("<f4").tofile(sys.argv[3])


if __name__ == "__main__":
    main()
