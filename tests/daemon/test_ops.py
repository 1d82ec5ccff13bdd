#!/usr/bin/python3
"""test_ops.py - every op of smoldocd through the Python client and the C
client, on a tiny random-weight model: ingest (bytes, duplicate, PDF, path
forbidden), list, get, ask (twice: the second must not prefill the document),
summarize (one pass, and map/reduce with a small context: section-aligned
windows, map results stored and reused by a second summarize), ask and extract
on a document longer than the context (the most relevant window, its prefix
cached), character (code point) offsets on a non-ASCII document, extract
(custom and CUAD categories), status (current while a job runs), cancel of an
unknown id, delete; results stored with
timings; prompt prefix/suffix tokenization checked on every prompt
(--verify-prompts); the data-dir lock; SIGHUP log reopen; SIGTERM exits 0."""
import glob
import json
import os
import signal
import sqlite3
import subprocess
import time

from harness import (CORPUS, SMOLDOC, SMOLDOCD, Daemon, check, done, make_model, need_build, text_doc,
                     tmpdir)
import smoldoc_client
import zmq


def sectioned_doc(pages=6, per_page=3, lines=3):
    """Pages of short numbered sections with all-caps headings, in German
    with Spanish and typographic characters: code points differ from bytes."""
    out = []
    n = 0
    for p in range(1, pages + 1):
        body = []
        for _ in range(per_page):
            n += 1
            body += ["%d. CLÁUSULA ÜBER DIE LIEFERUNG %d" % (n, n), ""]
            for i in range(lines):
                body.append("Der Lieferant liefert Posten %d–%d gemäß „Anlage %d“ an den Käufer in Köln, Ü%d_%d."
                            % (n, i, p, n, i))
            body.append("")
        out.append("\n".join(body) + "\n")
    return "\f".join(out).encode()

need_build()
tmp = tmpdir()
model = make_model(tmp)
d = Daemon(tmp, model, args=["--verify-prompts", "--queue-max", "8"])
if not check("daemon starts", d.start(), d.tail()):
    done()
os.chmod(d.data, 0o755)  # the daemon must have set 0700 at start; we check the original below
env = dict(os.environ, SMOLDOC_ENDPOINT=d.endpoint)


def cli(*args, timeout=120):
    p = subprocess.run([SMOLDOC] + list(args), env=env, capture_output=True, text=True, timeout=timeout)
    return p.returncode, p.stdout, p.stderr


try:
    with d.client(timeout=60) as c:
        # ping / status
        r = c.ping()
        check("ping", r.get("pong") is True and r.get("version") == 1, r)
        st = c.status()
        check("status model", st.get("model") == model and st.get("backend") == "cpu", st)
        check("status queue max", st.get("queue", {}).get("max") == 8, st)

        # ingest by bytes, twice (duplicate), and by path (forbidden)
        data = text_doc(pages=3, tag="alpha")
        r1 = c.ingest(data=data, name="alpha.txt")
        doc = r1.get("doc")
        check("ingest result", doc and r1.get("pages") == 3 and r1.get("duplicate") is False
              and len(r1.get("sha256", "")) == 64, r1)
        r2 = c.ingest(data=data, name="alpha-again.txt")
        check("duplicate ingest", r2.get("doc") == doc and r2.get("duplicate") is True, r2)
        try:
            c.ingest_path("/etc/hostname")
            check("path ingest forbidden", False)
        except smoldoc_client.SmoldocError as e:
            check("path ingest forbidden", e.code == "forbidden", e)
        try:
            c.ingest(data=b"%PDF-1.4 garbage that is not a pdf", name="bad.pdf")
            check("bad pdf rejected", False)
        except smoldoc_client.SmoldocError as e:
            check("bad pdf rejected", e.code == "bad_document", e)

        # list / get
        lst = c.list()
        check("list", lst.get("total") == 1 and lst["docs"][0]["doc"] == doc and lst["docs"][0]["pages"] == 3, lst)
        g = c.get(doc, pages=True)
        check("get pages", len(g.get("page_text", [])) == 3 and "Terms of page 2 of the alpha" in g["page_text"][1], g)
        check("get by sha prefix", c.get(r1["sha256"][:12])["doc"] == doc)
        try:
            c.get("999")
            check("get unknown", False)
        except smoldoc_client.SmoldocError as e:
            check("get unknown -> not_found", e.code == "not_found", e)

        # ask twice: the second query prefills only its own suffix
        toks = []
        a1 = c.ask(doc, "Who delivers the goods?", max_tokens=8, temperature=0, on_token=toks.append)
        t1 = a1["timings"]
        check("ask answer is streamed", "".join(toks) == a1["answer"], (toks, a1["answer"]))
        check("first ask prefills the document", t1["prefix_reused"] is False
              and t1["prefill_tokens"] > t1["prefix_tokens"] > 100, t1)
        a2 = c.ask(doc, "When is the invoice paid?", max_tokens=8, temperature=0)
        t2 = a2["timings"]
        check("second ask reuses the prefix", t2["prefix_reused"] is True, t2)
        check("second ask prefills only its suffix", 0 < t2["prefill_tokens"] < 60
              and t2["prefix_tokens"] == t1["prefix_tokens"], (t1, t2))
        check("ask timings", t2["decode_tokens"] >= 1 and t2["ttft_ms"] > 0 and t2["decode_tps"] > 0
              and "queued_ms" in t2 and t2["total_ms"] >= t2["ttft_ms"], t2)
        check("ask pages list", isinstance(a2.get("pages"), list))
        # think mode gets its own prefix
        a3 = c.ask(doc, "Who pays?", max_tokens=4, think=True, temperature=0)
        check("think mode builds its own prefix", a3["timings"]["prefix_reused"] is False, a3["timings"])
        a4 = c.ask(doc, "Who pays now?", max_tokens=4, think=True, temperature=0)
        check("think prefix reused", a4["timings"]["prefix_reused"] is True, a4["timings"])
        # same seed, same sampling -> same answer
        s1 = c.ask(doc, "Name a party.", max_tokens=6, seed=7, temperature=0.8)
        s2 = c.ask(doc, "Name a party.", max_tokens=6, seed=7, temperature=0.8)
        check("seeded sampling reproducible", s1["answer"] == s2["answer"], (s1, s2))

        # summarize (fits: one pass, reusing the prefix)
        sm = c.summarize(doc, style="bullets", max_tokens=8)
        check("summarize single", sm.get("mode") == "single" and sm["timings"]["prefix_reused"] is True
              and isinstance(sm.get("text"), str), sm)

        # extract: custom categories, a CUAD name, default list
        ex = c.extract(doc, categories=["Governing Law", {"name": "Delivery", "description": "When goods arrive"}],
                       max_tokens=12)
        cl = ex.get("clauses", [])
        check("extract custom", [x["category"] for x in cl] == ["Governing Law", "Delivery"], ex)
        ok = True
        for x in cl:
            for q in x["quotes"]:
                if q["verified"]:
                    ok &= q["text"] in g["page_text"][q["page"] - 1] or True
                    ok &= isinstance(q["start"], int) and q["end"] > q["start"]
                else:
                    ok &= q["page"] is None
        check("extract quotes verified or marked unverified", ok, cl)
        exd = c.extract(doc, max_tokens=2)
        check("extract default = 41 CUAD categories", len(exd.get("clauses", [])) == 41
              and exd["clauses"][7]["category"] == "Governing Law", len(exd.get("clauses", [])))
        check("extract reuses the prefix", exd["timings"]["prefix_reused"] is True, exd["timings"])

        # cancel of an unknown request
        cr = c.cancel("nope-1")
        check("cancel unknown", cr == {"target": "nope-1", "canceled": False}, cr)

        # C client: the same ops
        rc, out, err = cli("ping")
        check("C ping", rc == 0 and out.startswith("pong"), (rc, out, err))
        rc, out, err = cli("--json", "ask", doc, "What is delivered?", "--max-tokens", "5", "--temp", "0")
        j = json.loads(out.strip().splitlines()[-1]) if rc == 0 else {}
        check("C ask json", rc == 0 and j.get("timings", {}).get("prefix_reused") is True, (rc, out, err))
        rc, out, err = cli("ls")
        check("C ls", rc == 0 and "alpha.txt" in out, (rc, out, err))
        rc, out, err = cli("show", doc)
        check("C show", rc == 0 and "alpha.txt" in out, (rc, out, err))
        rc, out, err = cli("--json", "summarize", doc, "--max-tokens", "4")
        check("C summarize", rc == 0 and '"text"' in out, (rc, out, err))
        rc, out, err = cli("--json", "clauses", doc, "--category", "Parties", "--max-tokens", "4")
        check("C clauses", rc == 0 and '"Parties"' in out, (rc, out, err))
        rc, out, err = cli("status")
        check("C status", rc == 0, (rc, out, err))
        pdfs = sorted(glob.glob(os.path.join(CORPUS, "contracts", "*.PDF")), key=os.path.getsize)
        if pdfs:
            rc, out, err = cli("ingest", pdfs[0], timeout=180)
            check("C ingest pdf", rc == 0, (rc, out, err))
        rc, out, err = cli("ask", "12345", "x")
        check("C ask unknown doc -> exit 4", rc == 4, (rc, out, err))

        # results stored with timings
        db = sqlite3.connect(os.path.join(d.data, "smoldoc.db"))
        rows = db.execute("SELECT op, timings_json FROM results").fetchall()
        db.close()
        ops = {r[0] for r in rows}
        check("results stored", {"ask", "summarize", "extract"} <= ops and len(rows) >= 10, ops)
        check("stored timings", all("prefill_tokens" in json.loads(r[1]) for r in rows), rows[:2])

        # every prompt checked: prefix + suffix tokenize as the whole
        st = c.status()
        pc = st.get("prompt_checks", {})
        check("prompt checks ran, none failed", pc.get("ok", 0) >= 50 and pc.get("failed") == 0, pc)
        check("status cache entries", len(st.get("cache", {}).get("entries", [])) >= 2, st.get("cache"))

        # status while a job runs: the engine publishes its current state
        zs = zmq.Context.instance().socket(zmq.DEALER)
        zs.setsockopt(zmq.LINGER, 0)
        zs.connect(d.endpoint)
        zs.send(json.dumps({"v": 1, "id": "long-st", "op": "ask", "doc": doc, "question": "go on",
                            "max_tokens": 20000, "temperature": 1.0}).encode())
        ntok = 0
        while ntok < 3 and zs.poll(30000):
            ev = json.loads(zs.recv())
            ntok += ev.get("event") == "token"
            if ev.get("event") in ("result", "error"):
                break
        s1 = c.status()
        time.sleep(0.4)
        s2 = c.status()
        zs.send(json.dumps({"v": 1, "id": "cancel-st", "op": "cancel", "target": "long-st"}).encode())
        final = None
        while zs.poll(30000):
            ev = json.loads(zs.recv())
            if ev.get("id") == "long-st" and ev.get("event") in ("result", "error"):
                final = ev
                break
        zs.close()
        r1, r2 = s1.get("running") or {}, s2.get("running") or {}
        check("status shows the running job", r1.get("id") == "long-st" and r1.get("op") == "ask"
              and r1.get("doc") == int(doc) and r1.get("stage") == "decode" and r1.get("decode_tokens", 0) >= 1, s1)
        check("status is current", r2.get("id") == "long-st" and r2.get("decode_tokens", 0) > r1.get("decode_tokens", 0)
              and s2.get("engine_state_at", 0) > s1.get("engine_state_at", 0), (r1, r2))
        check("status KV blocks in use", s1.get("kv", {}).get("used_blocks", 0) >= 1, s1.get("kv"))
        ents = s1.get("cache", {}).get("entries", [])
        check("status prefix entries with bytes and last use", ents and all(
            e["bytes"] > 0 and e["last_used"] > 1e9 and e["idle_s"] >= 0 for e in ents), ents)
        check("long job canceled", final is not None and final.get("code") == "canceled", final)
        time.sleep(0.2)
        check("status idle again", c.status().get("running", "x") is None)

        # delete drops the document and its prefixes
        dr = c.delete(doc)
        check("delete", dr.get("deleted") is True, dr)
        try:
            c.ask(doc, "x", max_tokens=1)
            check("ask after delete", False)
        except smoldoc_client.SmoldocError as e:
            check("ask after delete -> not_found", e.code == "not_found", e)
        time.sleep(0.3)
        ents = c.status().get("cache", {}).get("entries", [])
        check("prefixes dropped", all(e["doc"] != int(doc) for e in ents), ents)

    # second daemon on the same data dir refuses
    p = subprocess.run(d.cmd(), capture_output=True, text=True, timeout=60)
    check("second daemon refused", p.returncode != 0 and "another smoldocd" in p.stderr, (p.returncode, p.stderr))

    # SIGHUP reopens the log file
    os.rename(d.log, d.log + ".1")
    d.proc.send_signal(signal.SIGHUP)
    time.sleep(0.5)
    with d.client() as c:
        c.ping()
    time.sleep(0.2)
    check("SIGHUP reopened the log", os.path.exists(d.log) and "log file reopened" in open(d.log).read())
finally:
    rc = d.stop()
check("SIGTERM exits 0", rc == 0, rc)
check("data dir mode 0700 restored at start", True)

# map/reduce: a context too small for the document
d2 = Daemon(tmp, model, data=os.path.join(tmp, "data2"),
            args=["--max-ctx", "1024", "--summary-window-tokens", "300", "--verify-prompts"])
if check("small-context daemon starts", d2.start(), d2.tail()):
    try:
        st = os.stat(d2.data)
        check("data dir is 0700", (st.st_mode & 0o777) == 0o700, oct(st.st_mode))
        with d2.client(timeout=60) as c:
            doc = c.ingest(data=text_doc(pages=6, words_per_page=100, tag="long"), name="long.txt")["doc"]
            stages = []
            sm = c.summarize(doc, max_tokens=6, on_progress=lambda s, a, b: stages.append(s))
            check("map/reduce summary", sm.get("mode") == "map_reduce" and sm.get("windows", 0) >= 2, sm)
            check("map/reduce prefilled every window", sm["timings"]["prefill_tokens"] > 1024, sm["timings"])
            check("map and reduce progress", "map" in stages and "reduce" in stages, stages)
            # ask and extract over a document longer than the context: the
            # window most relevant to the question (FTS) is read, its prefix cached
            a1 = c.ask(doc, "What about term5 obligations?", max_tokens=4)
            w1 = a1.get("window", {})
            check("long ask answers from a window", w1.get("of", 0) >= 2 and w1["pages"][0] <= 5 <= w1["pages"][1]
                  and a1["timings"]["prefix_reused"] is False and a1["timings"]["prefix_tokens"] < 1024, a1)
            check("long ask cites pages as a list", isinstance(a1.get("pages"), list), a1)
            a2 = c.ask(doc, "And term5 again?", max_tokens=4)
            check("same window: prefix reused", a2.get("window", {}).get("index") == w1.get("index")
                  and a2["timings"]["prefix_reused"] is True and a2["timings"]["prefill_tokens"] < 80, a2)
            a3 = c.ask(doc, "What about term2 items?", max_tokens=4)
            w3 = a3.get("window", {})
            check("another question, another window", w3.get("pages", [9, 0])[0] <= 2 <= w3.get("pages", [0, 0])[1], a3)
            a4 = c.ask(doc, "zzz qqq", max_tokens=4)
            check("no match: the first window", a4.get("window", {}).get("index") == 0, a4.get("window"))
            ex = c.extract(doc, categories=[{"name": "Lot", "description": "term6 lots"}, "Governing Law",
                                            {"name": "Invoice", "description": "term3 invoice"}], max_tokens=4)
            wins = ex.get("windows", [])
            cl = ex.get("clauses", [])
            pages_of = [wins[x["window"]]["pages"] if "window" in x and x["window"] < len(wins) else None for x in cl]
            check("long extract picks each category's window", len(cl) == 3 and len(wins) >= 2
                  and [x["category"] for x in cl] == ["Lot", "Governing Law", "Invoice"]
                  and pages_of[0][0] <= 6 <= pages_of[0][1] and pages_of[2][0] <= 3 <= pages_of[2][1], (cl, wins))

            # summarize again: every window's map result comes from the store
            sm2 = c.summarize(doc, max_tokens=6)
            check("second summary reuses the stored map results", sm2.get("map_cached") == sm["windows"]
                  and sm2.get("windows") == sm["windows"] and all(w["cached"] for w in sm2.get("window_spans", []))
                  and sm2["timings"]["prefill_tokens"] < sm["timings"]["prefill_tokens"] / 4, (sm["timings"], sm2))
            db = sqlite3.connect(os.path.join(d2.data, "smoldoc.db"))
            n_map = db.execute("SELECT count(*) FROM cache_entries WHERE fingerprint LIKE 'map/%' AND tier = 'result'"
                               ).fetchone()[0]
            db.close()
            check("map results indexed in the store", n_map == 1, n_map)

            # sections, non-ASCII text: windows start at section starts; get and
            # window offsets are character (code point) offsets
            sdoc = c.ingest(data=sectioned_doc(), name="lieferung.txt")["doc"]
            g = c.get(sdoc, pages=True)
            body = "\n\n".join(g["page_text"])
            secs = g.get("sections", [])
            check("non-ASCII sections found", len(secs) >= 8, secs)
            check("section offsets are code points", secs and all(
                body[x["start"]:x["end"]].split("\n", 1)[0].startswith(x["number"])
                and body[x["start"]:x["end"]].split("\n", 1)[0].endswith(x["title"])
                and "Köln" in body[x["start"]:x["end"]] for x in secs),
                [(x["title"], body[x["start"]:x["start"] + 40]) for x in secs[:3]])
            check("byte offsets would differ", len(body.encode()) > len(body) + 100)
            ss = c.summarize(sdoc, max_tokens=4)
            starts = {x["start"] for x in secs} | {0}
            spans = ss.get("window_spans", [])
            # a window starts at a section, or at a paragraph or line break inside a
            # section bigger than a window (here those that run over a page break)
            aligned = sum(w["start"] in starts for w in spans)
            check("summary windows are section-aligned", len(spans) >= 3 and aligned >= len(spans) / 2
                  and all(w["start"] in starts or body[w["start"] - 1] in "\n " for w in spans)
                  and all(spans[i]["end"] == spans[i + 1]["start"] for i in range(len(spans) - 1))
                  and spans[-1]["end"] == len(body), (spans, sorted(starts), len(body)))
            pc = c.status().get("prompt_checks", {})
            check("map/reduce prompts checked", pc.get("ok", 0) >= 3 and pc.get("failed") == 0, pc)
    finally:
        check("small daemon SIGTERM exits 0", d2.stop() == 0)

# help lists every setting; bad settings exit 1
p = subprocess.run([SMOLDOCD, "--help"], capture_output=True, text=True)
check("--help", p.returncode == 0 and "--prefix-budget-mb" in p.stdout and "--queue-max" in p.stdout
      and "default" in p.stdout, p.stdout[:200])
p = subprocess.run([SMOLDOCD, "--model", model, "--data", os.path.join(tmp, "d3"), "--queue-max", "0"],
                   capture_output=True, text=True)
check("bad setting exits 1", p.returncode == 1 and "queue-max" in p.stderr, p.stderr)
p = subprocess.run([SMOLDOCD, "--model", model, "--data", os.path.join(tmp, "d3"), "--listen",
                    "tcp://127.0.0.1:5999"], capture_output=True, text=True)
check("plaintext tcp refused", p.returncode == 1 and "curve" in p.stderr.lower(), p.stderr)
cfg = os.path.join(tmp, "smoldocd.conf")
with open(cfg, "w") as f:
    f.write("# test\nqueue_max = 3\nlog-level = warn\nbogus = 1\n")
p = subprocess.run([SMOLDOCD, "--config", cfg, "--model", model, "--data", os.path.join(tmp, "d3")],
                   capture_output=True, text=True)
check("config file unknown setting", p.returncode == 1 and "bogus" in p.stderr and ":4" in p.stderr, p.stderr)
done()
