#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Clients that misbehave on purpose, or that keep one connection across
an event of the test, for the timeout, limit and lifecycle scenarios.
Each talks to the proxy on 127.0.0.1:PORT and prints one result line;
times are seconds measured by the client itself.

usage: clientprobe.py PORT MODE [options]

  slowhead   send a request head that never ends, one byte every 0.4 s;
             prints "STATUS SECONDS closed|open", SECONDS from the first
             byte of that head to the answer (000: none).
             --first PATH: a complete request first on the same
             connection (keep-alive), --delay S: wait S after it.
  idle       one complete request, then nothing; prints "STATUS SECONDS"
             with SECONDS from the end of the response to the proxy's
             close (-1: not closed within --limit).
  handshake  CONNECT HOST (--connect), then no TLS handshake; prints
             "STATUS SECONDS" from the 200 to the close.
  tunnel     CONNECT HOST (--connect, a tunnelled host) and TLS to the
             origin (--ca is its CA); --count N GETs of PATH --every S
             apart, then nothing; prints "N-OK SECONDS", SECONDS from the
             last response to the close.
  hold       --count N keep-alive connections, a GET /healthz on each;
             then --extra M more connections (1), one at a time; prints
             "N-OK STATUS..." (the extra ones' distinct statuses); then closes the first and prints the status
             of a new connection's GET /healthz, retried until it is not
             refused (bounded by --limit).
  twostep    GET PATH on the connection, reading its first MiB (or all
             of a smaller body), then creates the file --ready and waits
             for the file --go (bounded by --limit), reads the rest; prints "first STATUS
             sha256:HEX"; then GET --second on the same connection and
             prints "second STATUS closed|open".
  noread    GET PATH, then read nothing for --limit seconds (a client
             that stalls); prints nothing.
  realms     --count N GETs of /v2/realm/LABEL/x on one connection,
             LABEL from --labels FILE (one a line, first N); prints
             "N-STATUS...": the distinct statuses seen.

options: --connect HOST (CONNECT HOST:443 and TLS with the proxy, --ca
the proxy's CA; without it, plain requests to the proxy itself),
--src ADDR (source address), --path PATH (default /healthz, or /v2/
inside --connect), --host HOST (Host header).
"""

import argparse
import hashlib
import os
import select
import socket
import ssl
import sys
import time


def parse_args():
    p = argparse.ArgumentParser()
    p.add_argument("port", type=int)
    p.add_argument("mode")
    p.add_argument("--connect")
    p.add_argument("--ca")
    p.add_argument("--src")
    p.add_argument("--path")
    p.add_argument("--host")
    p.add_argument("--first")
    p.add_argument("--delay", type=float, default=0.0)
    p.add_argument("--count", type=int, default=1)
    p.add_argument("--extra", type=int, default=1)
    p.add_argument("--every", type=float, default=1.0)
    p.add_argument("--limit", type=float, default=60.0)
    p.add_argument("--ready")
    p.add_argument("--go")
    p.add_argument("--second")
    p.add_argument("--labels")
    return p.parse_args()


A = parse_args()


def raw_conn():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if A.src:
        s.bind((A.src, 0))
    s.settimeout(A.limit)
    s.connect(("127.0.0.1", A.port))
    return s


def read_head(s):
    """The response head (bytes up to the blank line) and what followed,
    or (None, b"") at EOF."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        try:
            d = s.recv(65536)
        except (OSError, ssl.SSLError):
            d = b""
        if not d:
            return None, buf
        buf += d
    i = buf.index(b"\r\n\r\n") + 4
    return buf[:i], buf[i:]


def status_of(head):
    if head is None or not head.startswith(b"HTTP/1."):
        return "000"
    return head.split(b" ", 2)[1].decode()


def length_of(head):
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            return int(v.strip())
    return 0


def do_connect(s, host, tls, ca=None):
    """CONNECT host:443 over s; with tls, the TLS session inside it.
    Returns (socket, CONNECT status)."""
    s.sendall(b"CONNECT %s:443 HTTP/1.1\r\nHost: %s:443\r\n\r\n" % (host.encode(), host.encode()))
    head, rest = read_head(s)
    st = status_of(head)
    if st != "200" or not tls:
        return s, st
    ctx = ssl.create_default_context(cafile=ca or A.ca)
    return ctx.wrap_socket(s, server_hostname=host), st


def open_conn():
    s = raw_conn()
    if A.connect:
        s, st = do_connect(s, A.connect, True)
        if st != "200":
            print("connect-%s" % st)
            sys.exit(0)
    return s


def host_header():
    return (A.host or A.connect or "localhost").encode()


def request(s, path, extra=b""):
    s.sendall(b"GET %s HTTP/1.1\r\nHost: %s\r\n%s\r\n" % (path.encode(), host_header(), extra))


def read_response(s, sink=None):
    """Reads one response; returns (status, body bytes or digest)."""
    head, rest = read_head(s)
    if head is None:
        return "000", b""
    n = length_of(head)
    body = rest
    h = hashlib.sha256()
    got = len(rest)
    if sink:
        sink(rest, got)
    h.update(rest)
    while got < n:
        d = s.recv(min(65536, n - got))
        if not d:
            break
        got += len(d)
        h.update(d)
        if sink:
            sink(d, got)
        elif len(body) < (1 << 20):
            body += d
    return status_of(head), (body, "sha256:" + h.hexdigest(), got)


def wait_eof(s, limit):
    """Seconds until the peer closes (EOF or reset); -1 after limit."""
    t0 = time.monotonic()
    s.settimeout(0.5)
    while time.monotonic() - t0 < limit:
        try:
            d = s.recv(65536)
            if not d:
                return time.monotonic() - t0
        except socket.timeout:
            continue
        except ssl.SSLWantReadError:
            continue
        except (OSError, ssl.SSLError):
            return time.monotonic() - t0
    return -1.0


def default_path():
    return A.path or ("/v2/" if A.connect else "/healthz")


def mode_slowhead():
    s = open_conn()
    if A.first:
        request(s, A.first)
        st, _ = read_response(s)
        if st == "000":
            print("000 first-failed")
            return
        if A.delay:
            time.sleep(A.delay)  # the idle gap under test, not a wait for an event
    head = b"GET %s HTTP/1.1\r\nHost: %s\r\nX-Slow: " % (default_path().encode(), host_header())
    t0 = time.monotonic()
    s.sendall(head)
    s.setblocking(False)
    got = b""
    closed = False
    while time.monotonic() - t0 < A.limit:
        pending = s.pending() if isinstance(s, ssl.SSLSocket) else 0
        r, _, _ = select.select([s], [], [], 0 if pending else 0.4)
        if r or pending:
            try:
                d = s.recv(65536)
            except (ssl.SSLWantReadError, BlockingIOError):
                continue
            except (OSError, ssl.SSLError):
                closed = True
                break
            if not d:
                closed = True
                break
            if not got:
                t_answer = time.monotonic() - t0
            got += d
            continue
        if got:
            break  # an answer, and then a quiet 0.4 s: not closed (yet)
        try:
            s.send(b"a")
        except (BlockingIOError, ssl.SSLWantWriteError):
            pass
        except (OSError, ssl.SSLError):
            closed = True
            break
    if not got:
        t_answer = time.monotonic() - t0
    print("%s %.2f %s" % (status_of(got[:got.find(b"\r\n\r\n") + 4] if b"\r\n\r\n" in got else None),
                          t_answer, "closed" if closed else "open"))


def mode_idle():
    s = open_conn()
    request(s, default_path())
    st, _ = read_response(s)
    print("%s %.2f" % (st, wait_eof(s, A.limit)))


def mode_handshake():
    s = raw_conn()
    s, st = do_connect(s, A.connect, False)
    print("%s %.2f" % (st, wait_eof(s, A.limit) if st == "200" else -1))


def mode_tunnel():
    s = raw_conn()
    s, st = do_connect(s, A.connect, True, A.ca)
    if st != "200":
        print("connect-%s -1" % st)
        return
    ok = 0
    for i in range(A.count):
        if i:
            time.sleep(A.every)  # the traffic pattern under test
        request(s, A.path or "/")
        st, body = read_response(s)
        if st == "200":
            ok += 1
    print("%d %.2f" % (ok, wait_eof(s, A.limit)))


def healthz(s):
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
    return read_response(s)[0]


def mode_hold():
    conns = []
    ok = 0
    for _ in range(A.count):
        s = raw_conn()
        if healthz(s) == "200":
            ok += 1
        conns.append(s)
    statuses = set()
    for _ in range(A.extra):
        extra = raw_conn()
        head, _ = read_head(extra)
        statuses.add(status_of(head))
        extra.close()
    print("%d %s" % (ok, " ".join(sorted(statuses))))
    conns[0].close()
    t0 = time.monotonic()
    st = "000"
    while time.monotonic() - t0 < A.limit:
        s = raw_conn()
        st = healthz(s)
        s.close()
        if st == "200":
            break
        time.sleep(0.1)  # polling for the freed slot
    print(st)


def mode_twostep():
    s = open_conn()
    request(s, default_path())
    state = {"signalled": False}

    def pause():
        state["signalled"] = True
        open(A.ready, "w").close()
        t0 = time.monotonic()
        while not os.path.exists(A.go):
            if time.monotonic() - t0 > A.limit:
                print("first go-timeout")
                sys.exit(1)
            time.sleep(0.05)  # polling for the test's go-ahead

    def sink(d, got):
        if not state["signalled"] and got >= (1 << 20):
            pause()

    st, body = read_response(s, sink)
    if not state["signalled"]:
        pause()  # a small body: the pause comes after it
    print("first %s %s" % (st, body[1] if body else "-"))
    sys.stdout.flush()
    request(s, A.second)
    st, _ = read_response(s)
    print("second %s %s" % (st, "closed" if wait_eof(s, 2) >= 0 else "open"))


def mode_noread():
    s = open_conn()
    request(s, default_path())
    time.sleep(A.limit)  # the stalled client under test: the test kills it


def mode_realms():
    labels = open(A.labels).read().split()[:A.count]
    s = open_conn()
    seen = {}
    for lab in labels:
        request(s, "/v2/realm/%s/x" % lab)
        st, _ = read_response(s)
        seen[st] = seen.get(st, 0) + 1
    print(" ".join("%d-%s" % (n, st) for st, n in sorted(seen.items())))


MODES = {
    "slowhead": mode_slowhead,
    "idle": mode_idle,
    "handshake": mode_handshake,
    "tunnel": mode_tunnel,
    "hold": mode_hold,
    "twostep": mode_twostep,
    "noread": mode_noread,
    "realms": mode_realms,
}

if __name__ == "__main__":
    MODES[A.mode]()
