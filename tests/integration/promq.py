#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Queries on scrapes of the proxy's /metrics (Prometheus text format 0.0.4)
for the integration tests.

  promq.py sum SCRAPE SELECTOR        sum of the series SELECTOR matches
  promq.py delta OLD NEW SELECTOR     the same in NEW minus in OLD
  promq.py check SCRAPE               the exposition is well formed: every
                                      sample belongs to a family declared
                                      with HELP and TYPE, counters end in
                                      _total, histograms are consistent
                                      (cumulative buckets, +Inf = _count)
  promq.py families SCRAPE            the family names, one per line
  promq.py label-values SCRAPE LABEL  the values LABEL has in any sample,
                                      one per line
  promq.py requests-vs-log OLD NEW LOG MARK REGISTRY HOSTPORT
                                      every drp_requests_total series of
                                      REGISTRY moved by exactly as many
                                      requests as the JSON access log LOG
                                      has for HOSTPORT after byte MARK,
                                      and drp_sent_bytes_total by their
                                      bytes (the log's lines must parse)

SELECTOR: NAME or NAME{label="value",...}; the labels given must match, the
others are free. Exit status 1 with the reason on stderr when a check fails.
"""

import json
import re
import sys

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)",?')


def fail(msg):
    sys.stderr.write("promq: " + msg + "\n")
    sys.exit(1)


def labels_of(text):
    out, pos = {}, 0
    while pos < len(text):
        m = LABEL.match(text, pos)
        if not m:
            fail("bad labels {%s}" % text)
        out[m.group(1)] = m.group(2)
        pos = m.end()
    return out


def parse(path):
    """[(name, labels, value)], {family: type}, {family: help}"""
    samples, types, helps = [], {}, {}
    with open(path) as f:
        for line in f.read().splitlines():
            if not line:
                continue
            if line.startswith("# HELP "):
                _, _, name, text = line.split(" ", 3)
                helps[name] = text
                continue
            if line.startswith("# TYPE "):
                _, _, name, typ = line.split(" ", 3)
                types[name] = typ
                continue
            if line.startswith("#"):
                continue
            m = SAMPLE.match(line)
            if not m:
                fail("malformed line in %s: %r" % (path, line))
            samples.append((m.group(1), labels_of(m.group(3) or ""), float(m.group(4))))
    return samples, types, helps


def selector(sel):
    m = re.match(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?$', sel)
    if not m:
        fail("bad selector " + sel)
    return m.group(1), labels_of(m.group(3) or "")


def total(path, sel):
    name, want = selector(sel)
    samples, _, _ = parse(path)
    return sum(v for n, lab, v in samples
               if n == name and all(lab.get(k) == x for k, x in want.items()))


def family_of(name, types):
    if name in types:
        return name
    for suffix in ("_bucket", "_sum", "_count"):
        if name.endswith(suffix) and types.get(name[:-len(suffix)]) == "histogram":
            return name[:-len(suffix)]
    return None


def check(path):
    samples, types, helps = parse(path)
    for name, typ in types.items():
        if name not in helps:
            fail("%s: no HELP" % name)
        if typ == "counter" and not name.endswith("_total"):
            fail("counter %s does not end in _total" % name)
    hist = {}
    for name, lab, v in samples:
        fam = family_of(name, types)
        if fam is None:
            fail("sample %s of no declared family" % name)
        if v < 0 and types[fam] != "gauge":
            fail("negative %s" % name)
        if types[fam] == "histogram":
            key = (fam, tuple(sorted((k, x) for k, x in lab.items() if k != "le")))
            h = hist.setdefault(key, {"buckets": [], "count": None, "sum": None})
            if name.endswith("_bucket"):
                le = lab["le"]
                h["buckets"].append((float("inf") if le == "+Inf" else float(le), v))
            elif name.endswith("_count"):
                h["count"] = v
            else:
                h["sum"] = v
    for (fam, key), h in hist.items():
        b = sorted(h["buckets"])
        if not b or b[-1][0] != float("inf"):
            fail("%s%s: no +Inf bucket" % (fam, key))
        for (_, a), (_, c) in zip(b, b[1:]):
            if c < a:
                fail("%s%s: buckets not cumulative" % (fam, key))
        if h["count"] != b[-1][1]:
            fail("%s%s: _count %s != +Inf bucket %s" % (fam, key, h["count"], b[-1][1]))
        if h["sum"] is None or h["sum"] < 0:
            fail("%s%s: bad _sum" % (fam, key))


def requests_vs_log(old, new, log, mark, registry, hostport):
    want, sent = {}, {"cache": 0, "upstream": 0}
    with open(log, "rb") as f:
        f.seek(int(mark))
        for raw in f.read().splitlines():
            try:
                o = json.loads(raw)
            except ValueError as e:
                fail("access log line does not parse (%s): %r" % (e, raw))
            if o["host"] != hostport:
                continue
            res = o["result"]
            if res == "tls_error":
                res = "error"
            key = (o["method"].lower(), res, "%dxx" % (o["status"] // 100))
            want[key] = want.get(key, 0) + 1
            if res in ("hit", "revalidated", "stale"):
                sent["cache"] += o["bytes_out"]
            elif o["upstream_status"] is not None or res == "tunnel":
                sent["upstream"] += o["bytes_out"]
    got = {}
    for path, sign in ((new, 1), (old, -1)):
        for name, lab, v in parse(path)[0]:
            if name == "drp_requests_total" and lab["registry"] == registry:
                key = (lab["method"], lab["result"], lab["code"])
                got[key] = got.get(key, 0) + sign * v
    got = {k: v for k, v in got.items() if v}
    if got != want:
        fail("drp_requests_total{registry=%s} moved by %s, the access log has %s" % (registry, got, want))
    for src in ("cache", "upstream"):
        sel = 'drp_sent_bytes_total{registry="%s",source="%s"}' % (registry, src)
        d = total(new, sel) - total(old, sel)
        if d != sent[src]:
            fail("%s moved by %d, the access log sent %d" % (sel, d, sent[src]))
    print(sum(want.values()))


def number(v):
    """Integers as such (counters), anything else in full."""
    return "%d" % v if v == int(v) else repr(v)


def main(argv):
    if len(argv) < 3:
        fail(__doc__)
    cmd = argv[1]
    if cmd == "sum":
        print(number(total(argv[2], argv[3])))
    elif cmd == "delta":
        print(number(total(argv[3], argv[4]) - total(argv[2], argv[4])))
    elif cmd == "check":
        check(argv[2])
    elif cmd == "families":
        for name in sorted(parse(argv[2])[1]):
            print(name)
    elif cmd == "label-values":
        for v in sorted({lab[argv[3]] for _, lab, _ in parse(argv[2])[0] if argv[3] in lab}):
            print(v)
    elif cmd == "requests-vs-log":
        requests_vs_log(*argv[2:8])
    else:
        fail("unknown command " + cmd)


if __name__ == "__main__":
    main(sys.argv)
