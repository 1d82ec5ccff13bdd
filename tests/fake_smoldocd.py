#!/usr/bin/python3
"""fake_smoldocd.py - a tiny stand-in for smoldocd (protocol v1) used to test
the clients before the real daemon exists: a ROUTER that answers every op with
canned but checkable data (sha256 of ingested bytes, echo of the header).

usage: fake_smoldocd.py ENDPOINT [--curve SERVER_KEY_FILE]
Special documents: "busy" -> error busy, "boom" -> error internal, anything
but "1" -> not_found for get/delete. Question "slow" streams slowly (cancel tests).
"""
import hashlib
import json
import sys
import time

import zmq


def read_keys(path):
    pub = sec = None
    for line in open(path):
        line = line.strip()
        if line.startswith("public-key"):
            pub = line.split("=", 1)[1].strip()
        elif line.startswith("secret-key"):
            sec = line.split("=", 1)[1].strip()
    return pub, sec


def main():
    endpoint = sys.argv[1]
    ctx = zmq.Context()
    sock = ctx.socket(zmq.ROUTER)
    sock.setsockopt(zmq.LINGER, 0)
    if "--curve" in sys.argv:
        pub, sec = read_keys(sys.argv[sys.argv.index("--curve") + 1])
        sock.curve_server = True
        sock.curve_publickey = pub.encode()
        sock.curve_secretkey = sec.encode()
    sock.bind(endpoint)
    print("ready", flush=True)
    slow = {}  # id -> (identity, remaining tokens, next time)
    poller = zmq.Poller()
    poller.register(sock, zmq.POLLIN)

    def send(ident, rid, event, **kw):
        ev = {"v": 1, "id": rid, "event": event}
        ev.update(kw)
        sock.send_multipart([ident, json.dumps(ev).encode()])

    def error(ident, rid, code, msg):
        send(ident, rid, "error", code=code, message=msg)

    while True:
        events = dict(poller.poll(20))
        now = time.time()
        for rid, (ident, left, nxt) in list(slow.items()):
            if now >= nxt:
                if left == 0:
                    send(ident, rid, "result", result={"answer": "slow done", "pages": []})
                    del slow[rid]
                else:
                    send(ident, rid, "token", text="tick ")
                    slow[rid] = (ident, left - 1, now + 0.2)
        if sock not in events:
            continue
        frames = sock.recv_multipart()
        ident, rest = frames[0], frames[1:]
        try:
            h = json.loads(rest[0])
        except Exception as e:  # noqa: BLE001 - a fake: any parse failure
            error(ident, None, "bad_json", str(e))
            continue
        if not isinstance(h, dict) or h.get("v") != 1:
            error(ident, h.get("id") if isinstance(h, dict) else None, "version", "v must be 1")
            continue
        rid, op = h.get("id"), h.get("op")
        doc = h.get("doc")
        if doc == "busy":
            error(ident, rid, "busy", "queue full")
            continue
        if doc == "boom":
            error(ident, rid, "internal", "something broke")
            continue
        if op == "ping":
            send(ident, rid, "result", result={"pong": True, "version": 1})
        elif op == "status":
            send(ident, rid, "result", result={"version": 1, "server": "fake", "queue": {"depth": 0, "max": 8}})
        elif op == "list":
            send(ident, rid, "result", result={"docs": [{"doc": "1", "name": "sample.pdf", "pages": 3,
                                                         "added": "2026-01-01T00:00:00Z"}], "total": 1})
        elif op == "ingest":
            if len(rest) != 2:
                error(ident, rid, "bad_request", "ingest needs one file frame")
                continue
            send(ident, rid, "accepted")
            for i in range(1, 4):
                send(ident, rid, "progress", stage="ingest", done=i, total=3)
            send(ident, rid, "result", result={"doc": "1", "name": h.get("name"), "pages": 3,
                                               "bytes": len(rest[1]),
                                               "sha256": hashlib.sha256(rest[1]).hexdigest(),
                                               "duplicate": False})
        elif op in ("get", "delete") and doc != "1":
            error(ident, rid, "not_found", "no document %s" % doc)
        elif op == "get":
            res = {"doc": "1", "name": "sample.pdf", "pages": 2,
                   "sections": [{"title": "1. Term", "page": 1}, {"title": "2. Law", "page": 2}]}
            if h.get("pages"):
                res["page_text"] = ["first page text", "second page text"]
            send(ident, rid, "result", result=res)
        elif op == "delete":
            send(ident, rid, "result", result={"doc": doc, "deleted": True})
        elif op == "ask" and h.get("question") == "slow":
            send(ident, rid, "accepted")
            slow[rid] = (ident, 50, time.time())
        elif op in ("ask", "summarize"):
            send(ident, rid, "accepted")
            for i in (0, 50, 100):
                send(ident, rid, "progress", stage="prefill", done=i, total=100)
            for t in ["The", " answer", " is", " 42."]:
                send(ident, rid, "token", text=t)
            key = "answer" if op == "ask" else "text"
            send(ident, rid, "result", result={key: "The answer is 42.", "pages": [3],
                                               "echo": h,
                                               "timings": {"prefill_tokens": 100, "ttft_ms": 5,
                                                           "decode_tokens": 4, "decode_tps": 80.0}})
        elif op == "extract":
            cats = h.get("categories") or ["Parties", "Governing Law"]
            names = [c if isinstance(c, str) else c.get("name") for c in cats]
            send(ident, rid, "accepted")
            send(ident, rid, "result", result={"clauses": [
                {"category": n, "found": i == 0,
                 "quotes": [{"text": "quote for " + n, "page": 2, "verified": True}] if i == 0 else []}
                for i, n in enumerate(names)], "echo": h})
        elif op == "cancel":
            t = h.get("target")
            hit = t in slow
            send(ident, rid, "result", result={"target": t, "canceled": hit})
            if hit:
                error(slow[t][0], t, "canceled", "canceled by request")
                del slow[t]
        else:
            error(ident, rid, "unknown_op", "unknown op %r" % op)


if __name__ == "__main__":
    main()
