#!/usr/bin/env python3
"""A tiny PEP 503 package index over a folder of wheels (python3 stdlib only).

    python3 bench/index/serve.py --port 8765 --log /tmp/index.log [--wheels DIR]

Serves, from the wheels folder (default: wheels/ beside this file):
    /simple/                         the project list
    /simple/<normalized-name>/       links to that project's files, each with a
                                     #sha256= fragment (uv records and checks
                                     them) and data-requires-python; with
                                     --metadata also data-core-metadata /
                                     data-dist-info-metadata (PEP 658/714)
    /files/<wheel>                   the wheel itself
    /files/<wheel>.metadata          the wheel's METADATA file (PEP 658)

PEP 658 metadata is off by default: bookworm's pip 23.0.1 downloads a wheel
TWICE when the index advertises it (pypa/pip#11847, fixed in pip 23.1), which
would spoil the download count. uv resolves without it too (it reads the
wheel); relock.sh turns it on to make `uv lock` quicker.

Every wheel download writes one line to the log file (and every other request
too when --log-all is given), tab separated:
    <UTC time>  wheel  <method>  <file name>  <status>  <bytes>  <client>
so the benchmark counts fetched packages with
    awk -F'\t' '$2 == "wheel" && $3 == "GET" && $5 == 200' LOG | wc -l
Lines are written and flushed as each response completes.

A loopback index is far faster than PyPI; --latency-ms (before every response)
and --mbps (each file response paced to that many megabits per second) make it
slower, deterministically, when a benchmark wants downloads to cost something. SIGTERM and SIGINT
stop the server cleanly. Binds to 127.0.0.1 only unless --host says otherwise.
"""

import argparse
import email.parser
import hashlib
import html
import os
import re
import signal
import sys
import threading
import time
import urllib.parse
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def normalize(name):
    return re.sub(r"[-_.]+", "-", name).lower()


class Dist:
    __slots__ = ("filename", "path", "size", "sha256", "metadata", "metadata_sha256", "requires_python")

    def __init__(self, path):
        self.path = path
        self.filename = os.path.basename(path)
        self.size = os.path.getsize(path)
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        self.sha256 = h.hexdigest()
        self.metadata = None
        self.metadata_sha256 = None
        self.requires_python = None
        if self.filename.endswith(".whl"):
            with zipfile.ZipFile(path) as z:
                names = [n for n in z.namelist() if re.fullmatch(r"[^/]+\.dist-info/METADATA", n)]
                if names:
                    self.metadata = z.read(names[0])
                    self.metadata_sha256 = hashlib.sha256(self.metadata).hexdigest()
                    msg = email.parser.BytesParser().parsebytes(self.metadata, headersonly=True)
                    self.requires_python = msg.get("Requires-Python")


def project_of(filename):
    if filename.endswith(".whl"):
        return normalize(filename.split("-", 1)[0])
    for ext in (".tar.gz", ".zip"):
        if filename.endswith(ext):
            return normalize(filename[: -len(ext)].rsplit("-", 1)[0])
    return None


def scan(folder):
    projects = {}
    files = {}
    for entry in sorted(os.listdir(folder)):
        path = os.path.join(folder, entry)
        if not os.path.isfile(path):
            continue
        project = project_of(entry)
        if project is None:
            continue
        dist = Dist(path)
        projects.setdefault(project, []).append(dist)
        files[entry] = dist
    return projects, files


class Index:
    def __init__(self, folder, log_path, log_all, metadata):
        self.folder = folder
        self.metadata = metadata
        self.latency = 0.0
        self.rate = 0.0
        self.projects, self.files = scan(folder)
        self.log_all = log_all
        self.lock = threading.Lock()
        self.log = open(log_path, "a", buffering=1) if log_path else None

    def record(self, kind, method, name, status, size, client):
        if self.log is None or (kind != "wheel" and not self.log_all):
            return
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + "Z"
        line = "\t".join([stamp, kind, method, name, str(status), str(size), client])
        with self.lock:
            self.log.write(line + "\n")
            self.log.flush()


def page(title, links):
    body = "\n".join(links)
    return (
        "<!DOCTYPE html>\n<html>\n<head>\n<meta name=\"pypi:repository-version\" content=\"1.0\">\n"
        f"<title>{html.escape(title)}</title>\n</head>\n<body>\n<h1>{html.escape(title)}</h1>\n"
        f"{body}\n</body>\n</html>\n"
    ).encode()


class Handler(BaseHTTPRequestHandler):
    server_version = "dockwarm-bench-index/1"
    protocol_version = "HTTP/1.1"
    index = None  # set by main

    def log_message(self, fmt, *args):  # quiet: our own log says what matters
        pass

    def send_bytes(self, status, body, content_type, kind, name):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "max-age=0")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self.index.record(kind, self.command, name, status, len(body), self.client_address[0])

    def not_found(self, kind, name):
        self.send_bytes(404, b"not found\n", "text/plain", kind, name)

    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        if self.index.latency:
            time.sleep(self.index.latency)
        path = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path)
        idx = self.index
        if path in ("/", "/simple", "/simple/"):
            links = [f'<a href="/simple/{p}/">{html.escape(p)}</a>' for p in sorted(idx.projects)]
            return self.send_bytes(200, page("Simple index", links), "text/html; charset=utf-8", "page", "/simple/")
        m = re.fullmatch(r"/simple/([^/]+)/?", path)
        if m:
            project = normalize(m.group(1))
            dists = idx.projects.get(project)
            if not dists:
                return self.not_found("page", path)
            links = []
            for d in dists:
                attrs = [f'href="/files/{urllib.parse.quote(d.filename)}#sha256={d.sha256}"']
                if d.requires_python:
                    attrs.append(f'data-requires-python="{html.escape(d.requires_python)}"')
                if d.metadata_sha256 and idx.metadata:
                    attrs.append(f'data-core-metadata="sha256={d.metadata_sha256}"')
                    attrs.append(f'data-dist-info-metadata="sha256={d.metadata_sha256}"')
                links.append(f'<a {" ".join(attrs)}>{html.escape(d.filename)}</a><br/>')
            return self.send_bytes(200, page(f"Links for {project}", links), "text/html; charset=utf-8", "page", path)
        m = re.fullmatch(r"/files/([^/]+)", path)
        if m:
            name = m.group(1)
            if idx.metadata and name.endswith(".metadata") and name[: -len(".metadata")] in idx.files:
                d = idx.files[name[: -len(".metadata")]]
                if d.metadata is None:
                    return self.not_found("metadata", name)
                return self.send_bytes(200, d.metadata, "text/plain; charset=utf-8", "metadata", name)
            d = idx.files.get(name)
            if d is None:
                return self.not_found("wheel" if name.endswith(".whl") else "file", name)
            return self.send_file(d)
        return self.not_found("other", path)

    def send_file(self, d):
        kind = "wheel" if d.filename.endswith(".whl") else "file"
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(d.size))
        self.send_header("Cache-Control", "public, max-age=31536000, immutable")  # as PyPI's files
        self.end_headers()
        sent = 0
        if self.command != "HEAD":
            try:
                with open(d.path, "rb") as f:
                    start = time.monotonic()
                    rate = self.index.rate
                    for chunk in iter(lambda: f.read(1 << 16), b""):
                        self.wfile.write(chunk)
                        sent += len(chunk)
                        if rate:
                            ahead = sent / rate - (time.monotonic() - start)
                            if ahead > 0:
                                time.sleep(ahead)
            except (BrokenPipeError, ConnectionResetError):
                self.index.record(kind, self.command, d.filename, "aborted", sent, self.client_address[0])
                self.close_connection = True
                return
        self.index.record(kind, self.command, d.filename, 200, sent, self.client_address[0])


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8765)
    ap.add_argument("--wheels", default=os.path.join(here, "wheels"))
    ap.add_argument("--log", help="append one line per wheel download to this file")
    ap.add_argument("--log-all", action="store_true", help="log index pages and metadata requests too")
    ap.add_argument("--metadata", action="store_true", help="advertise and serve PEP 658 metadata files")
    ap.add_argument("--latency-ms", type=float, default=0, help="wait this long before every response")
    ap.add_argument("--mbps", type=float, default=0, help="pace each file download to this many Mbit/s")
    ap.add_argument("--pid-file", help="write the server's pid here once it listens")
    args = ap.parse_args()

    if not os.path.isdir(args.wheels):
        sys.exit(f"serve.py: no wheels folder at {args.wheels} (run bench/index/fetch.sh)")
    t0 = time.monotonic()
    Handler.index = Index(args.wheels, args.log, args.log_all, args.metadata)
    ThreadingHTTPServer.daemon_threads = True
    ThreadingHTTPServer.allow_reuse_address = True
    httpd = ThreadingHTTPServer((args.host, args.port), Handler)

    def stop(signum, frame):
        threading.Thread(target=httpd.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if args.pid_file:
        with open(args.pid_file, "w") as f:
            f.write(f"{os.getpid()}\n")
    idx = Handler.index
    idx.latency = args.latency_ms / 1000
    idx.rate = args.mbps * 1e6 / 8  # bytes per second
    print(
        f"serve.py: {len(idx.files)} files, {len(idx.projects)} projects from {args.wheels} "
        f"on http://{args.host}:{httpd.server_port}/simple ({time.monotonic() - t0:.1f}s to index)",
        flush=True,
    )
    try:
        httpd.serve_forever(poll_interval=0.2)
    finally:
        httpd.server_close()
        if args.pid_file:
            try:
                os.unlink(args.pid_file)
            except OSError:
                pass


if __name__ == "__main__":
    main()
