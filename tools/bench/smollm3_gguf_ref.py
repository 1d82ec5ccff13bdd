# smollm3_gguf_ref.py - numpy SmolLM3 forward pass in the HF convention (half-split
# RoPE, NoPE every 4th layer, Q/K rows un-permuted from GGUF order) over a GGUF
# file, compared with logits written by `llama_harness --logits-out`.
# usage: PYTHONPATH=$LLAMA_CACHE/node_modules/node-llama-cpp/llama/llama.cpp/gguf-py \
#        /usr/bin/python3 smollm3_gguf_ref.py MODEL.gguf '[tok,...]' LOGITS.f32 [max_rel_err]
# exits 1 when the max relative error exceeds max_rel_err (default 2e-2) or argmax differs.
import sys, json, numpy as np
from gguf.gguf_reader import GGUFReader
from gguf import quants
path, toks_json, logits_path = sys.argv[1], sys.argv[2], sys.argv[3]
r = GGUFReader(path)
W = {t.name: quants.dequantize(t.data, t.tensor_type).astype(np.float64).reshape([int(d) for d in reversed(t.shape)]) for t in r.tensors}
f = lambda k: r.fields[k].contents()
L, H, KV, E = f("smollm3.block_count"), f("smollm3.attention.head_count"), f("smollm3.attention.head_count_kv"), f("smollm3.embedding_length")
D = E // H; theta = f("smollm3.rope.freq_base"); eps = f("smollm3.attention.layer_norm_rms_epsilon")
def unpermute(w, nh):  # GGUF adjacent pairs -> HF half split
    R = w.shape[0] // nh
    return w.reshape(nh, R // 2, 2, -1).swapaxes(1, 2).reshape(w.shape)
toks = json.loads(toks_json); T = len(toks)
x = W["token_embd.weight"][toks]
rms = lambda v, w: v / np.sqrt((v * v).mean(-1, keepdims=True) + eps) * w
inv = 1.0 / theta ** (np.arange(0, D, 2) / D); ang = np.arange(T)[:, None] * inv[None]
cos, sin = np.cos(ang), np.sin(ang)
def rope(q):  # q (T, nh, D)
    a, b = q[..., :D // 2], q[..., D // 2:]
    c, s = cos[:, None], sin[:, None]
    return np.concatenate([a * c - b * s, b * c + a * s], -1)
for l in range(L):
    p = f"blk.{l}."
    h = rms(x, W[p + "attn_norm.weight"])
    q = (h @ unpermute(W[p + "attn_q.weight"], H).T).reshape(T, H, D)
    k = (h @ unpermute(W[p + "attn_k.weight"], KV).T).reshape(T, KV, D)
    v = (h @ W[p + "attn_v.weight"].T).reshape(T, KV, D)
    if (l + 1) % 4 != 0: q, k = rope(q), rope(k)
    out = np.zeros((T, H, D))
    for hh in range(H):
        s = q[:, hh] @ k[:, hh // (H // KV)].T / np.sqrt(D)
        s = s + np.triu(np.full((T, T), -np.inf), 1)
        s = np.exp(s - s.max(-1, keepdims=True)); s /= s.sum(-1, keepdims=True)
        out[:, hh] = s @ v[:, hh // (H // KV)]
    x = x + out.reshape(T, -1) @ W[p + "attn_output.weight"].T
    h = rms(x, W[p + "ffn_norm.weight"])
    g = h @ W[p + "ffn_gate.weight"].T
    x = x + ((g / (1 + np.exp(-g))) * (h @ W[p + "ffn_up.weight"].T)) @ W[p + "ffn_down.weight"].T
logits = rms(x, W["output_norm.weight"]) @ W["token_embd.weight"].T
ll = np.fromfile(logits_path, dtype=np.float32).reshape(T, -1)
err = np.abs(ll - logits).max() / np.abs(logits).max()
agree = np.mean(ll.argmax(-1) == logits.argmax(-1))
print(f"{path}: max rel err vs llama.cpp {err:.2e}; argmax agree {agree:.2f}")
tol = float(sys.argv[4]) if len(sys.argv) > 4 else 2e-2
sys.exit(0 if err <= tol and agree == 1.0 else 1)
