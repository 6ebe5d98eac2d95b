#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A Basic-auth registry that redirects blobs to other ports of its own
host, and records the Authorization that reaches each of them.

Listens on ADDR:443 (TLS, the registry), ADDR:6443 (TLS) and ADDR:8080
(plain http), all as HOST. On :443, with valid Basic credentials (any
USER:PASS pair given; otherwise 401 and a Basic challenge):
  /v2/                             200
  /v2/test/http8080/blobs/D        307 to http://HOST:8080/data/D
  /v2/test/https6443/blobs/D       307 to https://HOST:6443/data/D
  /v2/test/same/blobs/D            307 to https://HOST-IN-UPPER-CASE:443/data/D
  /v2/test/relative/blobs/D        307 to /data/D
On every port, without any check, /data/sha256:HEX serves the blob HEX of
BLOBDIR. Every request is logged to stdout as
  PORT "METHOD PATH HTTP/1.1" STATUS "AUTHORIZATION"
(AUTHORIZATION "-" when the request had none).

usage: redirectsink.py ADDR HOST CERT KEY BLOBDIR USER:PASS...
"""

import base64
import http.server
import os
import re
import ssl
import sys
import threading

ADDR, HOST, CERT, KEY, BLOBDIR = sys.argv[1:6]
ACCOUNTS = {"Basic " + base64.b64encode(a.encode()).decode() for a in sys.argv[6:]}
BLOB = re.compile(r"^/v2/test/(http8080|https6443|same|relative)/blobs/(sha256:[0-9a-f]{64})$")
DATA = re.compile(r"^/data/sha256:([0-9a-f]{64})$")
LOCK = threading.Lock()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def log(self, status):
        port = self.server.server_address[1]
        auth = self.headers.get("Authorization", "-")
        with LOCK:
            sys.stdout.write('%d "%s %s %s" %d "%s"\n' % (port, self.command, self.path,
                                                          self.request_version, status, auth))
            sys.stdout.flush()

    def reply(self, status, body=b"", extra=()):
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Docker-Distribution-Api-Version", "registry/2.0")
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self.log(status)

    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        port = self.server.server_address[1]
        d = DATA.match(self.path)
        if d:
            path = os.path.join(BLOBDIR, d.group(1))
            if not os.path.exists(path):
                return self.reply(404)
            with open(path, "rb") as f:
                body = f.read()
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
            return self.log(200)
        if port != 443:
            return self.reply(404)
        if self.headers.get("Authorization") not in ACCOUNTS:
            return self.reply(401, b'{"errors":[{"code":"UNAUTHORIZED"}]}',
                              [("WWW-Authenticate", 'Basic realm="sink"')])
        if self.path == "/v2/":
            return self.reply(200, b"{}")
        m = BLOB.match(self.path)
        if not m:
            return self.reply(404)
        mode, digest = m.groups()
        loc = {"http8080": "http://%s:8080/data/%s" % (HOST, digest),
               "https6443": "https://%s:6443/data/%s" % (HOST, digest),
               "same": "https://%s:443/data/%s" % (HOST.upper(), digest),
               "relative": "/data/%s" % digest}[mode]
        return self.reply(307, b"", [("Location", loc)])


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True


def serve(port, tls):
    srv = Server((ADDR, port), Handler)
    if tls:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(CERT, KEY)
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    return srv


def main():
    servers = [serve(443, True), serve(6443, True), serve(8080, False)]
    for s in servers[1:]:
        threading.Thread(target=s.serve_forever, daemon=True).start()
    servers[0].serve_forever()


if __name__ == "__main__":
    main()
