"""harness.py - shared helpers of the smoldocd integration tests: a tiny
random-weight model, starting and stopping smoldocd on a temporary data
folder, a check counter that prints "N passed, N failed"."""
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("BUILD", "build")
if not os.path.isabs(BUILD):
    BUILD = os.path.join(ROOT, BUILD)
sys.path.insert(0, os.path.join(ROOT, "clients", "python"))
import smoldoc_client  # noqa: E402

SMOLDOCD = os.path.join(BUILD, "smoldocd")
SMOLDOC = os.path.join(BUILD, "smoldoc")
SMOLRUN = os.path.join(BUILD, "smolrun")
TOKENIZER = os.path.join(ROOT, "tests", "fixtures", "gen", "tokenizer.json")
CORPUS = os.path.join(os.path.dirname(ROOT), "shared", "corpus")

passed = 0
failed = 0


def check(name, cond, detail=""):
    global passed, failed
    if cond:
        passed += 1
    else:
        failed += 1
        print("FAIL: %s %s" % (name, detail), flush=True)
    return cond


def done():
    print("%d passed, %d failed" % (passed, failed), flush=True)
    sys.exit(1 if failed else 0)


def skip_all(reason):
    print("SKIP: %s" % reason)
    print("0 passed, 0 failed, 1 skipped")
    sys.exit(0)


def need_build():
    for p in (SMOLDOCD, SMOLRUN):
        if not os.access(p, os.X_OK):
            print("FAIL: %s not built (make %s)" % (p, os.path.relpath(p, ROOT)))
            print("0 passed, 1 failed")
            sys.exit(1)
    if not os.path.exists(TOKENIZER):
        skip_all("tokenizer fixture %s missing (tools/mk-tokenizer-fixture.py)" % TOKENIZER)


def make_model(tmp, seed=1):
    out = os.path.join(tmp, "model")
    if not os.path.exists(os.path.join(out, "config.json")):
        subprocess.run([SMOLRUN, "mkmodel", "--out", out, "--preset", "tiny", "--seed", str(seed),
                        "--tokenizer", TOKENIZER], check=True, stderr=subprocess.DEVNULL)
    return out


def text_doc(pages=2, words_per_page=60, tag="alpha"):
    """A small text document with form-feed page breaks and known sentences.
    Each page has several distinct lines (single-line pages that repeat from
    page to page would be taken for running headers by ingest)."""
    out = []
    for p in range(1, pages + 1):
        lines = ["Section %d. Terms of page %d of the %s agreement." % (p, p, tag),
                 "The Supplier shall deliver lot %d of the goods within %d days." % (p, 10 + p),
                 "The Buyer shall pay invoice %d within %d days of receipt." % (p * 7, 30 + p)]
        for i in range(words_per_page // 10):
            lines.append(" ".join("term%d_%d_%d" % (p, i, k) for k in range(10)) + ".")
        out.append("\n".join(lines) + "\n")
    return "\f".join(out).encode()


class Daemon:
    def __init__(self, tmp, model, data=None, args=(), endpoint=None, log=None):
        self.tmp = tmp
        self.model = model
        self.data = data or os.path.join(tmp, "data")
        self.args = list(args)
        self.endpoint = endpoint or "ipc://" + os.path.join(self.data, "smoldocd.sock")
        self.log = log or os.path.join(tmp, "smoldocd.log")
        self.proc = None

    def cmd(self):
        return [SMOLDOCD, "--model", self.model, "--data", self.data, "--backend", "cpu", "--threads", "1",
                "--log-level", "debug", "--log-file", self.log] + self.args

    def start(self, wait=60, expect_ok=True):
        logf = open(self.log + ".err", "ab")
        self.proc = subprocess.Popen(self.cmd(), stdout=logf, stderr=logf)
        logf.close()
        t0 = time.monotonic()
        while time.monotonic() - t0 < wait:
            if self.proc.poll() is not None:
                if expect_ok:
                    print("smoldocd exited with %s; log tail:\n%s" % (self.proc.returncode, self.tail()))
                return False
            try:
                with self.client(timeout=0.5) as c:
                    c.ping()
                return True
            except Exception:
                time.sleep(0.1)
        return False

    def client(self, timeout=30.0, **kw):
        return smoldoc_client.Client(self.endpoint, timeout=timeout, **kw)

    def stop(self, sig=signal.SIGTERM, wait=30):
        if not self.proc:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(wait)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        rc = self.proc.returncode
        self.proc = None
        return rc

    def tail(self, n=30):
        try:
            with open(self.log, errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""


def tmpdir():
    return tempfile.mkdtemp(prefix="smoldocd-test-")
