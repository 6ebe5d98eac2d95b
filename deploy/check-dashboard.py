#!/usr/bin/python3
# SPDX-License-Identifier: MIT
# make check: deploy/grafana-dashboard.json is a Grafana dashboard whose
# queries use only metric names the proxy exports, with the labels they
# have. The names come from a real scrape of the proxy just built (its
# /metrics names every family even before it has a sample); label names
# from the samples after a request. Skips (77) without the binary.
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
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


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def get(url):
    with urllib.request.urlopen(url, timeout=5) as r:
        return r.read().decode()


# ---- what the proxy exports
with tempfile.TemporaryDirectory() as tmp:
    port, aport = free_port(), free_port()
    conf = os.path.join(tmp, "proxy.ini")
    with open(conf, "w") as f:
        f.write("[proxy]\nlisten = 127.0.0.1:%d\nadmin_listen = 127.0.0.1:%d\n"
                "workers = 1\nca_dir = %s/ca\naccess_log = %s/access.log\n"
                "error_log = %s/error.log\n[cache]\ndir = %s/cache\n"
                % (port, aport, tmp, tmp, tmp, tmp))
    proc = subprocess.Popen([binary, "-c", conf], stdin=subprocess.DEVNULL)
    try:
        text = None
        for _ in range(100):
            try:
                get("http://127.0.0.1:%d/healthz" % port)
                text = get("http://127.0.0.1:%d/metrics" % aport)
                break
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.2)
        if text is None:
            print("FAIL: the proxy did not answer /metrics")
            sys.exit(1)
    finally:
        proc.terminate()
        proc.wait(timeout=20)

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
    else:
        names[fam] = fam
check(len(types) >= 30, "a scrape with %d families" % len(types))

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
    for m in re.finditer(r"(?<![\w\"'.$])([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\{[^}]*\}|\[|\)|,|\s|/|$)", e):
        name, after = m.group(1), m.group(2)
        if not (name.startswith(("drp_", "process_")) or after.startswith("{")):
            continue
        used.add(name)
        check(name in names, "%s: %s is not exported by the proxy" % (title, name))
        fam = names.get(name)
        if fam in labels and after.startswith("{"):
            have = labels[fam] | ({"le"} if types.get(fam) == "histogram" else set()) | {"instance", "job"}
            for lab in re.findall(r"([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)", after):
                check(lab in have, "%s: %s has no label %s (it has %s)" % (title, name, lab, sorted(have)))
    for by in re.findall(r"\bby\s*\(([^)]*)\)", e):
        for lab in (x.strip() for x in by.split(",")):
            known = set().union(*labels.values()) | {"le", "instance", "job", "registry", "source", "code",
                                                     "method", "result", "plugin", "outcome", "section",
                                                     "side", "reason", "version"}
            check(lab in known, "%s: by (%s): unknown label" % (title, lab))

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
