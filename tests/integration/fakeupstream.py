#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A misbehaving registry for the cache tests, serving TLS on ADDR:443.

Blobs are looked up by digest in BLOBDIR (an OCI layout's blobs/sha256);
the repository name chooses the misbehaviour:
  test/bad/blobs/D    the right length, wrong bytes (a corrupt upstream)
  test/short/blobs/D  the right Content-Length, half the bytes, then close
  test/slow/blobs/D   the right bytes at RATE bytes per second
  test/chunked/blobs/D  the same, chunked (no Content-Length)
  test/good/blobs/D   the right bytes
  test/stall/blobs/D  the head and the first MiB, then nothing (the
                      connection stays open until the client closes it)
  test/reset/blobs/D  the right bytes at RATE bytes per second up to half
                      the blob, then a TCP reset (held at half while the
                      file BLOBDIR/../resetgate exists, at most 60 s)
(slow is held at half the same way while BLOBDIR/../slowgate exists)
(slow and good honour a single "Range: bytes=A-B", like a registry does)
  test/limited/tags/list  401 (Basic) without credentials; with them 200
                          and Docker Hub's pull limit, ratelimit-limit
                          100 and ratelimit-remaining one less per
                          credentialed request ("99;w=21600", ...)
  test/down/...           503
  test/mute/...           nothing at all: the request is read, never
                          answered
and /v2/ answers 200. /v2/realm/LABEL/... answers 401 with
  WWW-Authenticate: Bearer realm="https://LABEL.realms.test/token"
(a registry naming its token realm, a new one per LABEL). Two manifests by tag:
  test/schema1/manifests/v1    a signed schema1 manifest, whose
                               Docker-Content-Digest (as with a real
                               registry) is that of the unsigned payload
  test/baddigest/manifests/v1  a schema2 manifest whose
                               Docker-Content-Digest is of other bytes
  test/plain/manifests/v1      a schema2 manifest, its digest right
  test/hold/manifests/REF      held while the file BLOBDIR/../hold exists
                               (its arrival logged as "hold: METHOD PATH"),
                               then, for any tag, an OCI manifest if Accept
                               names the OCI type and not Docker's, else a
                               Docker schema2 manifest (both with
                               Docker-Content-Digest); by digest, the one
                               of the two with that digest, else 404
  test/holderr/manifests/REF   held the same way, then 404
While the file BLOBDIR/../fake-status holds "STATUS [RETRY-AFTER]", every
request gets that status instead (an overloaded or rate-limiting
registry: 503, 429 with Retry-After). Every request is logged to stdout as
  "METHOD PATH HTTP/1.1" STATUS
(the registry's access-log shape, so the tests count both the same way).

usage: fakeupstream.py ADDR CERT KEY BLOBDIR RATE
"""

import hashlib
import http.server
import os
import random
import re
import socket
import ssl
import struct
import sys
import time

ADDR, CERT, KEY, BLOBDIR, RATE = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
SCHEMA1 = (b'{\n   "schemaVersion": 1,\n   "name": "test/schema1",\n   "tag": "v1",\n'
           b'   "architecture": "amd64",\n   "fsLayers": [],\n   "history": [],\n'
           b'   "signatures": [{"header": {"alg": "ES256"}, "signature": "c2ln", "protected": "cHJv"}]\n}')
SCHEMA1_PAYLOAD = SCHEMA1[:SCHEMA1.index(b',\n   "signatures"')] + b"\n}"
V2 = b'{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","layers":[]}'
OCI = b'{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","layers":[]}'
DOCKER_V2 = "application/vnd.docker.distribution.manifest.v2+json"
OCI_V1 = "application/vnd.oci.image.manifest.v1+json"
HOLD = re.compile(r"^/v2/test/(hold|holderr)/manifests/([A-Za-z0-9_.:-]+)$")
BLOB = re.compile(r"^/v2/test/(bad|short|slow|chunked|good|stall|reset)/blobs/sha256:([0-9a-f]{64})$")
REALM = re.compile(r"^/v2/realm/([a-z0-9.-]+)/")
RANGE = re.compile(r"^bytes=(\d+)-(\d*)$")
LIMITED = []  # one entry per credentialed request of test/limited


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self):
        super().setup()
        # A head and its body go in two writes: without this, the body
        # waits for the head's delayed ACK (40 ms a response).
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, fmt, *args):
        pass

    def log(self, status):
        sys.stdout.write('"%s %s %s" %d\n' % (self.command, self.path, self.request_version, status))
        sys.stdout.flush()

    def reply(self, status, body=b"", ctype="application/json", extra=()):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Docker-Distribution-Api-Version", "registry/2.0")
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self.log(status)

    def drain(self):
        """Reads (and drops) until the client goes away."""
        try:
            while self.rfile.read(1):
                pass
        except OSError:
            pass

    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        try:
            with open(os.path.join(BLOBDIR, "..", "fake-status")) as f:
                forced = f.read().split()
        except FileNotFoundError:
            forced = []
        if forced:
            extra = [("Retry-After", forced[1])] if len(forced) > 1 else []
            return self.reply(int(forced[0]), b'{"errors":[{"code":"UNAVAILABLE","message":"try later"}]}',
                              extra=extra)
        if self.path == "/v2/":
            return self.reply(200, b"{}")
        if self.path == "/v2/test/limited/tags/list":
            if "Authorization" not in self.headers:
                return self.reply(401, b'{"errors":[{"code":"UNAUTHORIZED"}]}',
                                  extra=[("WWW-Authenticate", 'Basic realm="fake"')])
            LIMITED.append(1)
            return self.reply(200, b'{"name":"test/limited","tags":["v1"]}',
                              extra=[("RateLimit-Limit", "100;w=21600"),
                                     ("RateLimit-Remaining", "%d;w=21600" % (100 - len(LIMITED)))])
        if self.path.startswith("/v2/test/down/"):
            return self.reply(503, b'{"errors":[{"code":"UNAVAILABLE","message":"down"}]}')
        if self.path.startswith("/v2/test/mute/"):
            self.log(0)
            self.drain()
            self.close_connection = True
            return
        r = REALM.match(self.path)
        if r:
            return self.reply(401, b'{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}',
                              extra=[("WWW-Authenticate", 'Bearer realm="https://%s.realms.test/token",'
                                      'service="bad.test"' % r.group(1))])
        if self.path == "/v2/test/schema1/manifests/v1":
            return self.reply(200, SCHEMA1, "application/vnd.docker.distribution.manifest.v1+prettyjws",
                              [("Docker-Content-Digest", "sha256:" + hashlib.sha256(SCHEMA1_PAYLOAD).hexdigest())])
        if self.path == "/v2/test/baddigest/manifests/v1":
            return self.reply(200, V2, "application/vnd.docker.distribution.manifest.v2+json",
                              [("Docker-Content-Digest", "sha256:" + hashlib.sha256(V2 + b" ").hexdigest())])
        if self.path == "/v2/test/plain/manifests/v1":
            return self.reply(200, V2, "application/vnd.docker.distribution.manifest.v2+json",
                              [("Docker-Content-Digest", "sha256:" + hashlib.sha256(V2).hexdigest())])
        m = HOLD.match(self.path)
        if m:
            return self.held(m.group(1), m.group(2))
        m = BLOB.match(self.path)
        path = m and os.path.join(BLOBDIR, m.group(2))
        if not m or not os.path.exists(path):
            return self.reply(404, b'{"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown"}]}')
        mode, size = m.group(1), os.path.getsize(path)
        first, last, status = 0, size - 1, 200
        r = RANGE.match(self.headers.get("Range", "")) if mode in ("slow", "good") else None
        if r and int(r.group(1)) < size:
            first = int(r.group(1))
            last = min(int(r.group(2)), size - 1) if r.group(2) else size - 1
            status = 206
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        if mode == "chunked":
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Content-Length", str(last - first + 1))
        if status == 206:
            self.send_header("Content-Range", "bytes %d-%d/%d" % (first, last, size))
        self.send_header("Docker-Content-Digest", "sha256:" + m.group(2))
        self.send_header("Docker-Distribution-Api-Version", "registry/2.0")
        self.end_headers()
        self.log(status)
        if self.command == "HEAD":
            return
        if mode == "bad":
            # Deterministic wrong bytes of exactly the right length.
            self.wfile.write(random.Random("drp-bad-" + m.group(2)).randbytes(size))
            return
        if mode == "stall":
            with open(path, "rb") as f:
                self.wfile.write(f.read(1 << 20))
            self.wfile.flush()
            self.drain()
            self.close_connection = True
            return
        with open(path, "rb") as f:
            if mode == "short":
                self.wfile.write(f.read(size // 2))
                self.wfile.flush()
                self.close_connection = True
                return
            chunk = 65536
            start = time.monotonic()
            sent = 0
            held = False
            f.seek(first)
            left = last - first + 1
            while left > 0:
                b = f.read(min(chunk, left))
                if not b:
                    break
                left -= len(b)
                try:
                    if mode == "chunked":
                        self.wfile.write(b"%x\r\n" % len(b) + b + b"\r\n")
                        if left == 0:
                            self.wfile.write(b"0\r\n\r\n")
                    else:
                        self.wfile.write(b)
                except (OSError, ssl.SSLError):
                    # The proxy closed the connection mid-body.
                    sys.stdout.write("cut: %s %s after %d of %d bytes\n"
                                     % (self.command, self.path, sent, last - first + 1))
                    sys.stdout.flush()
                    self.close_connection = True
                    return
                sent += len(b)
                if mode == "reset" and sent >= size // 2:
                    self.wfile.flush()
                    self.gate("resetgate")
                    # SO_LINGER 0: close sends RST, not FIN.
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                               struct.pack("ii", 1, 0))
                    self.connection.close()
                    self.close_connection = True
                    return
                if mode == "slow" and not held and sent >= (last - first + 1) // 2:
                    self.wfile.flush()
                    held = True
                    start += self.gate("slowgate")
                if mode in ("slow", "chunked", "reset"):
                    ahead = sent / RATE - (time.monotonic() - start)
                    if ahead > 0:
                        time.sleep(ahead)


    def gate(self, name):
        """At half a slow or reset blob: wait while BLOBDIR/../NAME exists
        (at most 60 s), so that a test decides when the rest (or the
        reset) comes. Returns the seconds it waited."""
        gate = os.path.join(BLOBDIR, "..", name)
        if not os.path.exists(gate):
            return 0.
        sys.stdout.write("%s: %s %s held at half\n" % (name, self.command, self.path))
        sys.stdout.flush()
        t0 = time.monotonic()
        end = t0 + 60
        while os.path.exists(gate) and time.monotonic() < end:
            time.sleep(0.02)
        return time.monotonic() - t0

    def held(self, mode, ref):
        sys.stdout.write("hold: %s %s\n" % (self.command, self.path))
        sys.stdout.flush()
        gate = os.path.join(BLOBDIR, "..", "hold")
        end = time.monotonic() + 60
        while os.path.exists(gate) and time.monotonic() < end:
            time.sleep(0.02)
        if mode == "holderr":
            return self.reply(404, b'{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}')
        known = {"sha256:" + hashlib.sha256(b).hexdigest(): (b, t) for b, t in ((V2, DOCKER_V2), (OCI, OCI_V1))}
        if ref.startswith("sha256:"):
            if ref not in known:
                return self.reply(404, b'{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}')
            body, ctype = known[ref]
        else:
            accept = ",".join(self.headers.get_all("Accept") or [])
            body, ctype = (OCI, OCI_V1) if OCI_V1 in accept and DOCKER_V2 not in accept else (V2, DOCKER_V2)
        return self.reply(200, body, ctype, [("Docker-Content-Digest", "sha256:" + hashlib.sha256(body).hexdigest())])


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True


def main():
    srv = Server((ADDR, 443), Handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(CERT, KEY)
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
