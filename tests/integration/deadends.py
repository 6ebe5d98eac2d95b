#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Origins a tunnel cannot reach, and a name server that does not help.

On 127.0.0.1, three TCP ports:
  refusing  bound but not listening: a connect is refused at once
  hanging   listening with a full queue (filled by this process):
            the kernel drops further SYNs, a connect neither succeeds
            nor fails
  silent    listening, never accepting: the kernel completes the
            connection (up to 64 of them), and nothing ever answers (a
            TLS handshake or a request waits forever)
and on NSADDR:53 (UDP) a name server that answers NXDOMAIN for nx.test
and never answers any other question (each question is logged to
stdout as "query NAME").

Writes "REFUSING HANGING SILENT" to PORTFILE once all is ready, then serves.

usage: deadends.py NSADDR PORTFILE
"""

import os
import socket
import sys

NSADDR, PORTFILE = sys.argv[1:3]

refusing = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
refusing.bind(("127.0.0.1", 0))

hanging = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
hanging.bind(("127.0.0.1", 0))
hanging.listen(0)
fillers = []
for _ in range(4):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setblocking(False)
    try:
        s.connect(hanging.getsockname())
    except BlockingIOError:
        pass
    fillers.append(s)

silent = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
silent.bind(("127.0.0.1", 0))
silent.listen(64)

ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
ns.bind((NSADDR, 53))

with open(PORTFILE + ".tmp", "w") as f:
    f.write("%d %d %d\n" % (refusing.getsockname()[1], hanging.getsockname()[1], silent.getsockname()[1]))
os.rename(PORTFILE + ".tmp", PORTFILE)


def qname(q):
    labels, off = [], 12
    while off < len(q) and q[off] != 0:
        n = q[off]
        labels.append(q[off + 1:off + 1 + n].decode("ascii", "replace"))
        off += 1 + n
    return ".".join(labels), off + 5


while True:
    q, peer = ns.recvfrom(512)
    if len(q) < 12:
        continue
    name, end = qname(q)
    sys.stdout.write("query %s\n" % name)
    sys.stdout.flush()
    if name.lower() != "nx.test" or end > len(q):
        continue
    # The question back, flags QR RD RA, rcode 3 (NXDOMAIN), no answers.
    ns.sendto(q[:2] + b"\x81\x83" + q[4:6] + b"\x00\x00\x00\x00\x00\x00" + q[12:end], peer)
