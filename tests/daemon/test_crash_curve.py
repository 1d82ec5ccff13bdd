#!/usr/bin/python3
"""test_crash_curve.py - (1) kill -9 of smoldocd during ingest and during
generation, then restart: PRAGMA integrity_check is ok and every document is
whole (all its pages) or absent; (2) TCP with CurveZMQ on 127.0.0.1: a client
whose key is not in the allowed list gets no reply, an allowed one works."""
import glob
import os
import signal
import socket
import sqlite3
import subprocess
import time

from harness import CORPUS, SMOLDOC, Daemon, check, done, make_model, need_build, text_doc, tmpdir
import smoldoc_client

need_build()
tmp = tmpdir()
model = make_model(tmp)


def db_ok(data):
    db = sqlite3.connect(os.path.join(data, "smoldoc.db"))
    ic = db.execute("PRAGMA integrity_check").fetchone()[0]
    docs = db.execute("SELECT id, pages FROM documents").fetchall()
    whole = all(db.execute("SELECT count(*) FROM pages WHERE doc_id = ?", (i,)).fetchone()[0] == n
                for i, n in docs)
    db.close()
    return ic, docs, whole


# ---------- kill -9 during ingest ----------
pdfs = sorted(glob.glob(os.path.join(CORPUS, "contracts", "*.pdf")) + glob.glob(os.path.join(CORPUS, "contracts", "*.PDF")),
              key=os.path.getsize)
big = pdfs[-1] if pdfs else None
big_txt = text_doc(pages=400, words_per_page=200, tag="big")
d = Daemon(tmp, model)
for k, delay in enumerate((0.05, 0.3, 0.8)):
    if not check("start %d" % k, d.start(), d.tail()):
        break
    c = d.client(timeout=30)
    import zmq
    s = zmq.Context.instance().socket(zmq.DEALER)
    s.setsockopt(zmq.LINGER, 0)
    s.connect(d.endpoint)
    data = open(big, "rb").read() if (big and k % 2 == 0) else big_txt + str(k).encode()
    s.send_multipart([b'{"v":1,"id":"i%d","op":"ingest","name":"big%d.%s"}' % (k, k, b"pdf" if k % 2 == 0 and big else b"txt"),
                      data])
    time.sleep(delay)
    d.proc.send_signal(signal.SIGKILL)
    d.proc.wait()
    d.proc = None
    s.close()
    c.close()
    ic, docs, whole = db_ok(d.data)
    check("integrity after kill -9 in ingest %d" % k, ic == "ok", ic)
    check("documents whole or absent %d" % k, whole, docs)

# ---------- kill -9 during generation ----------
if check("restart", d.start(), d.tail()):
    with d.client(timeout=60) as c:
        doc = c.ingest(data=text_doc(pages=3, tag="gen"), name="gen.txt")["doc"]
        n_before = c.list()["total"]
    s = zmq.Context.instance().socket(zmq.DEALER)
    s.setsockopt(zmq.LINGER, 0)
    s.connect(d.endpoint)
    s.send(b'{"v":1,"id":"g1","op":"ask","doc":"%s","question":"go","max_tokens":20000}' % doc.encode())
    s.poll(10000)
    time.sleep(0.5)
    d.proc.send_signal(signal.SIGKILL)
    d.proc.wait()
    d.proc = None
    s.close()
    ic, docs, whole = db_ok(d.data)
    check("integrity after kill -9 in generation", ic == "ok" and whole, (ic, docs))
    if check("restart after kill -9", d.start(), d.tail()):
        with d.client(timeout=60) as c:
            check("documents kept", c.list()["total"] == n_before)
            a = c.ask(doc, "again", max_tokens=2)
            check("works after restart", "answer" in a, a)
        check("clean stop", d.stop() == 0)

# ---------- CurveZMQ ----------
kd = os.path.join(tmp, "keys")
os.makedirs(kd)
for name in ("server", "good", "bad"):
    subprocess.run([SMOLDOC, "keygen", os.path.join(kd, name)], check=True, capture_output=True)
with open(os.path.join(kd, "allowed"), "w") as f:
    f.write("# allowed clients\n" + open(os.path.join(kd, "good.pub")).read())
sk = socket.socket()
sk.bind(("127.0.0.1", 0))
port = sk.getsockname()[1]
sk.close()
ep = "tcp://127.0.0.1:%d" % port
dc = Daemon(tmp, model, data=os.path.join(tmp, "dataC"), endpoint=ep, log=os.path.join(tmp, "c.log"),
            args=["--listen", ep, "--curve-server-key", os.path.join(kd, "server.key"),
                  "--curve-allowed-keys", os.path.join(kd, "allowed")])
dc.endpoint = ep


def curve_client(key, timeout):
    return smoldoc_client.Client(ep, timeout=timeout, server_key=os.path.join(kd, "server.pub"), client_key=key)


dc.client = lambda timeout=30.0, **kw: curve_client(os.path.join(kd, "good.key"), timeout)
if check("curve daemon starts", dc.start(), dc.tail()):
    try:
        with curve_client(os.path.join(kd, "good.key"), 10) as c:
            check("allowed key served", c.ping().get("pong") is True)
        for key in (os.path.join(kd, "bad.key"), None):
            try:
                with curve_client(key, 2) as c:
                    c.ping()
                check("unlisted key refused (%s)" % key, False)
            except smoldoc_client.SmoldocTimeout:
                check("unlisted key refused (%s)" % key, True)
        # plaintext client on the CURVE port: no reply
        try:
            with smoldoc_client.Client(ep, timeout=2) as c:
                c.ping()
            check("plaintext client refused", False)
        except smoldoc_client.SmoldocTimeout:
            check("plaintext client refused", True)
        env = dict(os.environ, SMOLDOC_ENDPOINT=ep)
        p = subprocess.run([SMOLDOC, "--server-key", os.path.join(kd, "server.pub"), "--client-key",
                            os.path.join(kd, "good.key"), "ping"], env=env, capture_output=True, text=True, timeout=30)
        check("C client with allowed key", p.returncode == 0, p.stderr)
        p = subprocess.run([SMOLDOC, "--server-key", os.path.join(kd, "server.pub"), "--client-key",
                            os.path.join(kd, "bad.key"), "--timeout", "2", "ping"], env=env, capture_output=True,
                           text=True, timeout=30)
        check("C client with unlisted key refused", p.returncode == 2, (p.returncode, p.stderr))
        check("refusal logged", "not allowed" in open(dc.log).read())
    finally:
        check("curve daemon exits 0", dc.stop() == 0)
done()
