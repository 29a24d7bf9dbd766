#!/usr/bin/env python3
"""Small stdlib-only helpers for etcdctl-suite.sh.

Subcommands:
  freeports N             print N distinct free TCP ports on 127.0.0.1, one per line
  json EXPR [FILE]        parse JSON from FILE (default stdin) as `d` and print eval(EXPR).
                          Helpers available in EXPR: b64d(s) (base64 -> str), hexid(n).
                          Lists print one element per line, bools print true/false,
                          None prints nothing.
  jsonlines EXPR [FILE]   like json, but FILE holds one JSON document per line
                          (e.g. `watch -w json`); `d` is the list of documents.
  kvdigest [FILE]         parse `get -w json` output from FILE (default stdin) and print
                          "<number of kvs> <sha256 over key, value, create/mod revision,
                          version of every kv>" (compares whole key spaces cheaply).
  strip-watch PREFIX FILE print the simple-format output of `etcdctl watch` in FILE,
                          minus the leading 3-line sentinel events (PUT/<key>/<value>)
                          whose key starts with PREFIX.
"""
import base64
import hashlib
import json
import socket
import sys


def b64d(s):
    return base64.b64decode(s or "").decode("utf-8", "replace")


def hexid(n):
    return "%016x" % int(n)


def emit(v):
    if v is None:
        return
    if isinstance(v, bool):
        print("true" if v else "false")
    elif isinstance(v, (list, tuple)):
        for x in v:
            emit(x)
    else:
        print(v)


def main(argv):
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    cmd = argv[0]
    if cmd == "freeports":
        n = int(argv[1])
        socks, ports = [], []
        while len(ports) < n:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", 0))
            p = s.getsockname()[1]
            socks.append(s)
            if p not in ports:
                ports.append(p)
        for s in socks:
            s.close()
        print("\n".join(str(p) for p in ports))
        return 0
    if cmd in ("json", "jsonlines"):
        expr = argv[1]
        f = open(argv[2]) if len(argv) > 2 else sys.stdin
        text = f.read()
        if cmd == "json":
            d = json.loads(text)
        else:
            d = [json.loads(l) for l in text.splitlines() if l.strip().startswith("{")]
        emit(eval(expr, {"b64d": b64d, "hexid": hexid, "len": len, "sorted": sorted,
                         "set": set, "int": int, "str": str, "all": all, "any": any}, {"d": d}))
        return 0
    if cmd == "kvdigest":
        f = open(argv[1]) if len(argv) > 1 else sys.stdin
        kvs = json.loads(f.read()).get("kvs", [])
        h = hashlib.sha256()
        for kv in kvs:
            h.update(json.dumps([kv.get("key", ""), kv.get("value", ""), kv.get("create_revision", 0),
                                 kv.get("mod_revision", 0), kv.get("version", 0)]).encode())
            h.update(b"\n")
        print("%d %s" % (len(kvs), h.hexdigest()))
        return 0
    if cmd == "strip-watch":
        prefix, path = argv[1], argv[2]
        lines = open(path).read().split("\n")
        i = 0
        while i + 2 < len(lines) and lines[i] == "PUT" and lines[i + 1].startswith(prefix):
            i += 3
        sys.stdout.write("\n".join(lines[i:]))
        return 0
    print("unknown subcommand %r" % cmd, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
