#!/usr/bin/python3
# SPDX-License-Identifier: MIT
# A service manager's NOTIFY_SOCKET, for tests: binds the AF_UNIX datagram
# socket NAME ("@abstract" or a path) and appends one line per datagram to
# OUT: the datagram's assignments joined by '|', then " port=open" or
# " port=closed" (whether 127.0.0.1:PORT accepted a connection at the
# moment the datagram arrived: READY=1 must come only once it does).
# usage: notifylistener.py NAME PORT OUT
import socket
import sys

name, port, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind("\0" + name[1:] if name.startswith("@") else name)
with open(out, "a", buffering=1) as f:
    f.write("listening\n")
    while True:
        msg = s.recv(4096).decode("utf-8", "replace")
        try:
            c = socket.create_connection(("127.0.0.1", port), timeout=1)
            c.close()
            state = "open"
        except OSError:
            state = "closed"
        f.write("%s port=%s\n" % (msg.replace("\n", "|"), state))
