#!/usr/bin/python3
"""smoldoc_client.py - Python client for smoldocd (protocol v1, see
protocol/PROTOCOL.md), using Debian's python3-zmq. Library and a tiny CLI:

    from smoldoc_client import Client
    with Client() as c:
        doc = c.ingest("contract.pdf")["doc"]
        print(c.ask(doc, "Who may terminate?", on_token=print)["answer"])

    python3 smoldoc_client.py [--endpoint E] [--json] ask DOC "question"
"""
import itertools
import json
import os
import sys
import time

import zmq

PROTOCOL_VERSION = 1
OPTION_FIELDS = ("think", "max_tokens", "temperature", "top_p", "top_k", "min_p",
                 "repetition_penalty", "seed", "deadline_ms")


class SmoldocError(Exception):
    """The daemon answered with an error event (code is the stable wire code)."""

    def __init__(self, code, message, request_id=None):
        super().__init__("%s: %s" % (code, message))
        self.code = code
        self.message = message
        self.request_id = request_id


class SmoldocTimeout(Exception):
    """No event from the daemon within the timeout."""


def default_endpoint():
    """$SMOLDOC_ENDPOINT, else ipc://$SMOLDOC_DATA/smoldocd.sock
    (SMOLDOC_DATA defaulting to ~/.local/share/smoldoc)."""
    ep = os.environ.get("SMOLDOC_ENDPOINT")
    if ep:
        return ep
    data = os.environ.get("SMOLDOC_DATA") or os.path.join(
        os.path.expanduser("~"), ".local", "share", "smoldoc")
    return "ipc://" + os.path.join(data, "smoldocd.sock")


def read_key_file(path):
    """Returns (public, secret) Z85 strings from a smoldoc key file; secret may be None."""
    pub = sec = None
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            if "=" in line:
                k, v = (s.strip() for s in line.split("=", 1))
                if k == "public-key":
                    pub = v
                elif k == "secret-key":
                    sec = v
            elif len(line) == 40:
                pub = line
    if pub is None or len(pub) != 40:
        raise ValueError("%s: no public key" % path)
    return pub, sec


def keygen(prefix):
    """Writes PREFIX.key (0600) and PREFIX.pub like `smoldoc keygen`; returns the public key."""
    pub, sec = zmq.curve_keypair()
    pub, sec = pub.decode(), sec.decode()
    fd = os.open(prefix + ".key", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write("# smoldoc CurveZMQ key pair (secret: keep this file private)\n"
                "public-key = %s\nsecret-key = %s\n" % (pub, sec))
    fd = os.open(prefix + ".pub", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    with os.fdopen(fd, "w") as f:
        f.write("# smoldoc CurveZMQ public key\npublic-key = %s\n" % pub)
    return pub


class Client:
    """One DEALER connection. Not thread-safe: one request at a time per Client.

    timeout: seconds to wait for the daemon's first event (None: forever);
    after a request is accepted, waits without limit unless idle_timeout is set.
    server_key / client_key: key file paths for CurveZMQ (tcp endpoints)."""

    def __init__(self, endpoint=None, timeout=30.0, idle_timeout=None,
                 server_key=None, client_key=None):
        self.endpoint = endpoint or default_endpoint()
        self.timeout = timeout
        self.idle_timeout = idle_timeout
        self._ids = itertools.count(1)
        self._ctx = zmq.Context()
        self._sock = self._ctx.socket(zmq.DEALER)
        self._sock.setsockopt(zmq.LINGER, 0)
        if server_key:
            spub, _ = read_key_file(server_key)
            if client_key:
                cpub, csec = read_key_file(client_key)
                if not csec:
                    raise ValueError("%s: no secret key" % client_key)
            else:
                cpub, csec = (k.decode() for k in zmq.curve_keypair())
            self._sock.curve_serverkey = spub.encode()
            self._sock.curve_publickey = cpub.encode()
            self._sock.curve_secretkey = csec.encode()
        self._sock.connect(self.endpoint)

    def close(self):
        self._sock.close(0)
        self._ctx.term()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _next_id(self):
        return "py%d-%d" % (os.getpid(), next(self._ids))

    def request(self, op, frames=(), on_token=None, on_progress=None, on_event=None, **fields):
        """Sends one request and returns its result object (a dict).
        Fields whose value is None are left out. Raises SmoldocError on an
        error event and SmoldocTimeout when the daemon is silent too long."""
        rid = self._next_id()
        header = {"v": PROTOCOL_VERSION, "id": rid, "op": op}
        header.update({k: v for k, v in fields.items() if v is not None})
        self._sock.send_multipart([json.dumps(header).encode()] + list(frames))
        accepted = False
        last = time.monotonic()
        while True:
            limit = self.idle_timeout if accepted else self.timeout
            wait = None if limit is None else max(0.0, limit - (time.monotonic() - last))
            if wait is not None and wait == 0.0:
                raise SmoldocTimeout("no reply from %s within %g s" % (self.endpoint, limit))
            if not self._sock.poll(None if wait is None else int(wait * 1000) + 1):
                continue
            parts = self._sock.recv_multipart()
            last = time.monotonic()
            try:
                ev = json.loads(parts[0])
            except ValueError:
                continue
            if not isinstance(ev, dict) or ev.get("id") not in (rid, None):
                continue  # another request's event (e.g. one we gave up on)
            if on_event:
                on_event(ev)
            kind = ev.get("event")
            if kind in ("accepted", "progress", "token"):
                accepted = True
            if kind == "progress" and on_progress:
                on_progress(ev.get("stage"), ev.get("done"), ev.get("total"))
            elif kind == "token" and on_token:
                on_token(ev.get("text", ""))
            elif kind == "result":
                return ev.get("result", {})
            elif kind == "error":
                raise SmoldocError(ev.get("code", "internal"), ev.get("message", ""), ev.get("id"))

    # ---- operations ----
    def ping(self):
        return self.request("ping")

    def status(self):
        return self.request("status")

    def list(self, limit=None, offset=None):
        return self.request("list", limit=limit, offset=offset)

    def ingest(self, path=None, data=None, name=None, on_progress=None):
        """Ingests a local file (its bytes are sent) or raw bytes in `data`."""
        if data is None:
            with open(path, "rb") as f:
                data = f.read()
            name = name or os.path.basename(path)
        return self.request("ingest", frames=[data], name=name, on_progress=on_progress)

    def ingest_path(self, server_path, name=None, on_progress=None):
        """Ingests a file by its path on the daemon's machine (if the daemon allows it)."""
        return self.request("ingest", path=server_path, name=name, on_progress=on_progress)

    def get(self, doc, pages=None, sections=None):
        return self.request("get", doc=doc, pages=pages, sections=sections)

    def delete(self, doc):
        return self.request("delete", doc=doc)

    def summarize(self, doc, style=None, words=None, on_token=None, on_progress=None, **opts):
        return self.request("summarize", doc=doc, style=style, words=words, on_token=on_token,
                            on_progress=on_progress, **_options(opts))

    def extract(self, doc, categories=None, on_progress=None, **opts):
        return self.request("extract", doc=doc, categories=categories or None,
                            on_progress=on_progress, **_options(opts))

    def ask(self, doc, question, on_token=None, on_progress=None, **opts):
        return self.request("ask", doc=doc, question=question, on_token=on_token,
                            on_progress=on_progress, **_options(opts))

    def cancel(self, target):
        return self.request("cancel", target=target)


def _options(opts):
    bad = set(opts) - set(OPTION_FIELDS)
    if bad:
        raise TypeError("unknown options: %s" % ", ".join(sorted(bad)))
    return opts


# ---- CLI ----
USAGE = """usage: smoldoc_client.py [--endpoint E] [--json] [--timeout S]
       [--think] [--max-tokens N] [--temp T] [--seed N] [--server-key F] [--client-key F]
       ingest FILE... | ls | show DOC [--pages] | rm DOC | summarize DOC [--style S]
       | clauses DOC [--category C]... | ask DOC QUESTION | status | ping | keygen PREFIX
exit status: 0 ok, 1 usage, 2 connection/timeout, 3 server error, 4 not found, 5 busy"""


def main(argv):
    opts, pos, cats = {}, [], []
    endpoint, as_json, timeout, pages, style = None, False, 30.0, None, None
    server_key = client_key = None
    i = 0
    try:
        while i < len(argv):
            a = argv[i]
            if a in ("-h", "--help"):
                print(USAGE)
                return 0
            if not a.startswith("--"):
                pos.append(a)
            elif a == "--json":
                as_json = True
            elif a == "--think":
                opts["think"] = True
            elif a == "--no-think":
                opts["think"] = False
            elif a == "--pages":
                pages = True
            else:
                i += 1
                v = argv[i]
                if a == "--endpoint":
                    endpoint = v
                elif a == "--timeout":
                    timeout = float(v)
                elif a == "--max-tokens":
                    opts["max_tokens"] = int(v)
                elif a == "--temp":
                    opts["temperature"] = float(v)
                elif a == "--seed":
                    opts["seed"] = int(v)
                elif a == "--style":
                    style = v
                elif a == "--category":
                    cats.append(v)
                elif a == "--server-key":
                    server_key = v
                elif a == "--client-key":
                    client_key = v
                else:
                    raise ValueError("unknown option " + a)
            i += 1
    except (IndexError, ValueError) as e:
        print("smoldoc_client: %s\n%s" % (e, USAGE), file=sys.stderr)
        return 1
    if not pos:
        print(USAGE, file=sys.stderr)
        return 1
    cmd, args = pos[0], pos[1:]
    need = {"ingest": None, "ls": 0, "show": 1, "rm": 1, "summarize": 1, "clauses": 1,
            "ask": 2, "status": 0, "ping": 0, "keygen": 1}
    if cmd not in need or (need[cmd] is not None and len(args) != need[cmd]) or \
            (cmd == "ingest" and not args):
        print("smoldoc_client: bad command line\n" + USAGE, file=sys.stderr)
        return 1
    if cmd == "keygen":
        print(keygen(args[0]))
        return 0

    def out(res):
        print(json.dumps(res) if as_json else json.dumps(res, indent=2))

    try:
        with Client(endpoint, timeout=timeout, server_key=server_key, client_key=client_key) as c:
            if cmd == "ingest":
                for f in args:
                    out(c.ingest(f))
            elif cmd == "ls":
                out(c.list())
            elif cmd == "show":
                out(c.get(args[0], pages=pages))
            elif cmd == "rm":
                out(c.delete(args[0]))
            elif cmd in ("summarize", "ask"):
                stream = None if as_json else (lambda t: (sys.stdout.write(t), sys.stdout.flush()))
                if cmd == "ask":
                    res = c.ask(args[0], args[1], on_token=stream, **opts)
                else:
                    res = c.summarize(args[0], style=style, on_token=stream, **opts)
                if as_json:
                    out(res)
                else:
                    print()
            elif cmd == "clauses":
                out(c.extract(args[0], categories=cats or None, **opts))
            elif cmd == "status":
                out(c.status())
            elif cmd == "ping":
                out(c.ping())
    except SmoldocTimeout as e:
        print("smoldoc_client: %s" % e, file=sys.stderr)
        return 2
    except SmoldocError as e:
        print("smoldoc_client: %s" % e, file=sys.stderr)
        return {"not_found": 4, "busy": 5}.get(e.code, 3)
    except OSError as e:
        print("smoldoc_client: %s" % e, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
