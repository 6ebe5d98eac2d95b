#!/usr/bin/python3
# SPDX-License-Identifier: MIT
# make check: deploy/grafana-dashboard.json is a Grafana dashboard whose
# queries use only metric names the proxy exports, with the labels they
# have. The names come from a real scrape of the proxy just built (its
# /metrics names every family even before it has a sample); label names
# from the samples after requests it makes. Skips (77) without the
# binary.
import http.server
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

src = os.environ.get("top_srcdir", ".")
build = os.environ.get("top_builddir", ".")
binary = os.path.join(build, "docker-registry-proxy")
fails = []


def check(cond, what):
    if not cond:
        fails.append(what)
        print("FAIL: " + what)


if not os.access(binary, os.X_OK):
    print("SKIP: %s not built" % binary)
    sys.exit(77)

with open(os.path.join(src, "deploy", "grafana-dashboard.json")) as f:
    dash = json.load(f)


def free_ports(n):
    """n distinct free ports: each socket stays bound until all are
    chosen (a port freed at once may be handed out again at once)."""
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def get(url):
    with urllib.request.urlopen(url, timeout=5) as r:
        return r.read().decode()


# ---- what the proxy exports
# A scrape names every family (HELP and TYPE) even before it has a
# sample; the label names come from samples, so before the scrape the
# proxy answers requests that give most families one: a plain-HTTP GET
# passed to a local origin (requests, bytes, upstream responses, the
# histograms), a CONNECT to a port it refuses, and a CONNECT to an
# intercepted host followed by bytes that are no TLS (a client handshake
# failure). Token fetches and Docker Hub's rate limit need a registry
# with credentials: their labels are the documented ones (LABELS_DOC).
LABELS_DOC = {"drp_token_fetches_total": {"plugin", "outcome"},
              "drp_ratelimit_remaining": {"section"},
              "drp_ratelimit_limit": {"section"}}


class Origin(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        body = b"hello from the origin\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt, *args):
        pass


def connect(port, target, then=b""):
    """A CONNECT to the proxy; returns its status line."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (target, target))
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = s.recv(4096)
            if not chunk:
                break
            head += chunk
        if then:
            s.sendall(then)
            try:
                while s.recv(4096):
                    pass
            except OSError:
                pass
        return head.split(b"\r\n", 1)[0].decode()


origin = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Origin)
threading.Thread(target=origin.serve_forever, daemon=True).start()
oport = origin.server_address[1]
with tempfile.TemporaryDirectory() as tmp:
    port, aport = free_ports(2)
    conf = os.path.join(tmp, "proxy.ini")
    with open(conf, "w") as f:
        f.write("[proxy]\nlisten = 127.0.0.1:%d\nadmin_listen = 127.0.0.1:%d\n"
                "workers = 1\nca_dir = %s/ca\naccess_log = %s/access.log\n"
                "error_log = %s/error.log\nregistries = intercept.test\n"
                "tunnel_ports = 443 %d\n[resolve]\nplain.test = 127.0.0.1\n"
                "[cache]\ndir = %s/cache\n"
                % (port, aport, tmp, tmp, tmp, oport, tmp))
    proc = subprocess.Popen([binary, "-c", conf], stdin=subprocess.DEVNULL)
    try:
        text = None
        for _ in range(100):
            try:
                get("http://127.0.0.1:%d/healthz" % port)
                break
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.2)
        proxied = urllib.request.build_opener(
            urllib.request.ProxyHandler({"http": "http://127.0.0.1:%d" % port}))
        with proxied.open("http://plain.test:%d/x" % oport, timeout=10) as r:
            check(r.status == 200 and r.read().startswith(b"hello"), "a GET through the proxy")
        check(connect(port, b"plain.test:1").split(" ")[1] == "403", "a CONNECT to a refused port")
        check(connect(port, b"intercept.test:443", b"no TLS here\r\n\r\n").split(" ")[1] == "200",
              "a CONNECT to an intercepted host")
        # Requests are counted when their connection's line is logged.
        for _ in range(50):
            text = get("http://127.0.0.1:%d/metrics" % aport)
            if "drp_tls_handshake_failures_total{" in text and "drp_connections_open 0" in text:
                break
            time.sleep(0.2)
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        origin.shutdown()
if text is None:
    print("FAIL: the proxy did not answer /metrics")
    sys.exit(1)

types, labels = {}, {}
for line in text.splitlines():
    m = re.match(r"^# TYPE (\S+) (\S+)$", line)
    if m:
        types[m.group(1)] = m.group(2)
        continue
    m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? ", line)
    if m and not line.startswith("#"):
        labels.setdefault(m.group(1), set()).update(re.findall(r'([a-zA-Z_]\w*)="', m.group(2) or ""))
names = {}
for fam, typ in types.items():
    if typ == "histogram":
        for suffix in ("_bucket", "_sum", "_count"):
            names[fam + suffix] = fam
            # A histogram's series: le on _bucket only, the rest alike.
            labels.setdefault(fam, set()).update(labels.get(fam + suffix, set()) - {"le"})
    else:
        names[fam] = fam
check(len(types) >= 30, "a scrape with %d families" % len(types))
for fam, labs in LABELS_DOC.items():
    check(fam in types, "%s is exported" % fam)
    check(fam not in labels or labels[fam] == labs, "%s has the labels %s" % (fam, sorted(labs)))
    labels.setdefault(fam, labs)
for fam in ("drp_requests_total", "drp_sent_bytes_total", "drp_upstream_received_bytes_total",
            "drp_upstream_responses_total", "drp_request_duration_seconds", "drp_first_byte_seconds",
            "drp_tls_handshake_failures_total"):
    check(fam in labels, "the requests gave %s a sample" % fam)


def labels_of(name):
    """The labels a selector on series `name` may use (None: unknown)."""
    fam = names.get(name)
    if fam is None or fam not in labels:
        return None
    have = set(labels[fam]) | {"instance", "job"}
    if name.endswith("_bucket") and types.get(fam) == "histogram":
        have.add("le")
    return have


# ---- the dashboard
check(dash.get("title") and dash.get("uid"), "title and uid")
check(isinstance(dash.get("schemaVersion"), int), "schemaVersion")
exprs, ids = [], set()
for p in dash.get("panels", []):
    check(p.get("id") not in ids, "panel id %s unique" % p.get("id"))
    ids.add(p.get("id"))
    g = p.get("gridPos", {})
    check(0 <= g.get("x", -1) and g.get("x", 0) + g.get("w", 99) <= 24, "panel %r inside the grid" % p.get("title"))
    if p.get("type") == "row":
        continue
    check(p.get("datasource", {}).get("type") == "prometheus", "panel %r: Prometheus" % p.get("title"))
    check(p.get("targets"), "panel %r has queries" % p.get("title"))
    for t in p.get("targets", []):
        exprs.append((p.get("title"), t.get("expr", "")))
for v in dash.get("templating", {}).get("list", []):
    q = v.get("query")
    if isinstance(q, dict):
        exprs.append(("variable " + v["name"], q.get("query", "")))

# Metric names: identifiers followed by a selector or a range, or with our
# prefixes; PromQL keywords and functions are followed by "(".
used = set()
for title, e in exprs:
    check(e.strip(), "%s: empty query" % title)
    in_expr = set()
    for m in re.finditer(r"(?<![\w\"'.$])([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\{[^}]*\}|\[|\)|,|\s|/|$)", e):
        name, after = m.group(1), m.group(2)
        if not (name.startswith(("drp_", "process_")) or after.startswith("{")):
            continue
        used.add(name)
        in_expr.add(name)
        check(name in names, "%s: %s is not exported by the proxy" % (title, name))
        have = labels_of(name)
        if after.startswith("{"):
            for lab in re.findall(r"([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)", after):
                check(have is not None and lab in have,
                      "%s: %s has no label %s (it has %s)" % (title, name, lab, sorted(have or [])))
    # Aggregation and label_values() labels: on a series the query uses.
    known = set().union(*(labels_of(n) or set() for n in in_expr)) if in_expr else set()
    for by in re.findall(r"\b(?:by|without)\s*\(([^)]*)\)", e):
        for lab in (x.strip() for x in by.split(",") if x.strip()):
            check(lab in known, "%s: by (%s): no series of %s has it" % (title, lab, sorted(in_expr)))
    for name, lab in re.findall(r"label_values\(\s*([a-zA-Z_:][\w:]*)\s*,\s*(\w+)\s*\)", e):
        check(lab in (labels_of(name) or set()), "%s: label_values(%s, %s): no such label" % (title, name, lab))

# The dashboard shows what issue 13 asks the metrics for.
for fam in ("drp_requests_total", "drp_sent_bytes_total", "drp_upstream_received_bytes_total",
            "drp_request_duration_seconds_bucket", "drp_first_byte_seconds_bucket",
            "drp_upstream_responses_total", "drp_token_fetches_total", "drp_ratelimit_remaining",
            "drp_ratelimit_limit", "drp_tls_handshake_failures_total", "drp_forged_certificates_total",
            "drp_fills_in_flight", "drp_fill_waiters", "drp_reloads_total", "drp_build_info",
            "process_cpu_seconds_total", "process_resident_memory_bytes", "process_open_fds",
            "process_start_time_seconds"):
    check(fam in used, "the dashboard does not show %s" % fam)

print("%d queries, %d metric names checked against %d exported families" % (len(exprs), len(used), len(types)))
sys.exit(1 if fails else 0)
