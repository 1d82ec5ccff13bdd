import json, statistics as st, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
th, ncpu, cpu = sys.argv[2], sys.argv[3], sys.argv[4]
# The bandwidth is measured before the runs and again before each rep (the
# machine is shared, so it drifts); the ceiling uses the median of them all.
bws = [r["res"] for r in rows if r["tag"] == "bandwidth"]
bw = None
if bws:
    bw = {"copy_gbs": st.median(b["copy_gbs"] for b in bws), "read_gbs": st.median(b["read_gbs"] for b in bws),
          "threads": bws[0]["threads"], "n": len(bws), "lo": min(b["copy_gbs"] for b in bws),
          "hi": max(b["copy_gbs"] for b in bws)}
rows = [r for r in rows if r["tag"] != "bandwidth"]
quick = not any(r["tag"] == "p1024" for r in rows)
def vals(eng, ty, tag, key):
    return [r["res"][key] for r in rows if r["dtype"] == ty and r["tag"] == tag and
            (r["res"].get("engine") == "llama.cpp") == (eng == "llama") and r["res"].get(key, 0) > 0]
def med(eng, ty, tag, key):
    v = vals(eng, ty, tag, key)
    return (st.median(v), len(v)) if v else (None, 0)
def paired(ty, tag_o, tag_l, key):  # rep k of ours against rep k of llama.cpp (adjacent in time)
    r = [a / b for a, b in zip(vals("ours", ty, tag_o, key), vals("llama", ty, tag_l, key))]
    return st.median(r) if r else None
figs = [("prefill tok/s, 128-token prompt", "short", "short", "prefill_tps"),
        ("decode tok/s, context 128", "short", "short", "decode_tps")]
if not quick:
    figs += [("prefill tok/s, 1024-token prompt", "p1024", "long", "prefill_tps"),
             ("decode tok/s, context 4096", "d4096", "long", "decode_tps")]
print()
print(f"SmolLM3-3B (random weights), {th} threads, CPU: {cpu} ({ncpu} cores visible); shared machine: compare ratios")
if bw:
    print(f"memory: streaming copy {bw['copy_gbs']:.1f} GB/s (read+write bytes), read {bw['read_gbs']:.1f} GB/s, {bw['threads']} threads"
          + (f"; median of {bw['n']} measurements, copy {bw['lo']:.1f} to {bw['hi']:.1f}" if bw["n"] > 1 else ""))
print()
print("ours: --compute fast, llama.cpp's precision (BF16: bf16 activations; Q8_0: 8-bit activations, Q8_0 x Q8_0)")
print("'ours exact': the default (BF16: f32 activations; Q8_0: two-level ~16-bit activations)")
print("ratio: of the medians; paired: median over reps of ours / llama.cpp measured next to each other")
print(f"{'dtype':5} {'figure':34} {'ours':>9} {'llama.cpp':>10} {'ratio':>7} {'paired':>7}  runs  {'ours exact':>10} {'ratio':>7}")
fx = lambda x, w: f"{x:{w}.2f}" if x else f"{'-':>{w}}"
for ty in ("bf16", "q8_0"):
    for name, tag_o, tag_l, key in figs:
        o, no = med("ours", ty, tag_o, key)
        l, nl = med("llama", ty, tag_l, key)
        e, ne = med("ours", ty, tag_o + "-exact", key)
        ra = f"{o / l:6.2f}x" if o and l else f"{'-':>7}"
        pr = paired(ty, tag_o, tag_l, key)
        pa = f"{pr:6.2f}x" if pr else f"{'-':>7}"
        ex = f"  {e:10.2f} {e / l:6.2f}x" if e and l else f"  {'-':>10}"
        print(f"{ty:5} {name:34} {fx(o, 9)} {fx(l, 10)} {ra} {pa}  {no}/{nl}{ex}")
    wb = [r["res"]["weight_bytes"] for r in rows if r["dtype"] == ty and "weight_bytes" in r["res"]]
    if wb and bw:
        ceil = bw["copy_gbs"] * 1e9 / wb[0]
        o, _ = med("ours", ty, "short", "decode_tps")
        l, _ = med("llama", ty, "short", "decode_tps")
        pct = lambda x: f"{100 * x / ceil:.0f}%" if x else "-"
        print(f"{ty:5} {'decode ceiling (copy BW / weights)':34} {ceil:9.2f}   ({wb[0] / 1e9:.2f} GB/token; ctx 128: ours {pct(o)}, llama.cpp {pct(l)})")
