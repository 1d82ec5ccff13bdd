#!/usr/bin/python3
"""Compares two float32 logit files (positions x vocab): max |a-b| <= tol * max|ref|
and the same argmax at every position (or at least MIN_ARGMAX_FRACTION of them). Prints one line; exit 1 on mismatch.

usage: compare_logits.py OURS REF VOCAB [REL_TOL=1e-3] [LABEL] [MIN_ARGMAX_FRACTION=1]
"""
import sys

import numpy as np

ours, ref, vocab = sys.argv[1], sys.argv[2], int(sys.argv[3])
tol = float(sys.argv[4]) if len(sys.argv) > 4 else 1e-3
label = sys.argv[5] if len(sys.argv) > 5 else ""
min_frac = float(sys.argv[6]) if len(sys.argv) > 6 else 1.0
a = np.fromfile(ours, "<f4").reshape(-1, vocab).astype(np.float64)
b = np.fromfile(ref, "<f4").reshape(-1, vocab).astype(np.float64)
if a.shape != b.shape:
    print(f"FAIL {label}: shapes {a.shape} vs {b.shape}")
    sys.exit(1)
err = np.abs(a - b).max()
scale = np.abs(b).max()
same = (a.argmax(1) == b.argmax(1))
ok = np.isfinite(a).all() and err <= tol * scale and same.mean() >= min_frac
print(f"{'ok' if ok else 'FAIL'} {label}: positions {a.shape[0]} max|d| {err:.3g} "
      f"(limit {tol * scale:.3g}) argmax equal {same.sum()}/{len(same)}")
sys.exit(0 if ok else 1)
