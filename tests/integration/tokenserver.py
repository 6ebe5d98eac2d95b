#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A registry token service for the integration tests (TLS on ADDR:443).

Docker's token protocol as distribution's `token` auth expects it:
  GET  /token?service=S&scope=repository:NAME:ACTIONS[&scope=...]
       (optionally with Basic credentials)
  POST /token  (OAuth2 form: grant_type=password, username, password,
       service, scope; containerd uses it when it has credentials)
answer {"token", "access_token", "expires_in", "issued_at"}: an RS256 JWT
whose "kid" is the libtrust key id of KEY, the key of the certificate the
registry's rootcertbundle holds.

Accounts (user:password -> what each may do):
  anonymous                 pull on public/*
  proxyuser:proxy-pw        pull on private/* and public/*
  alice:alice-pw            pull and push on private/*, public/*, alice/*
Asked-for actions beyond those are left out of the token (the registry
then answers 401/403), as real token services do. Wrong credentials: 401.

Every request is logged to stdout, one line:
  METHOD user=NAME|- scope=SCOPE[,SCOPE...] status=CODE
so the tests can count token fetches per scope and see whose they were.

usage: tokenserver.py ADDR CERT KEY SIGNING-KEY ISSUER EXPIRES-IN
"""

import base64
import fnmatch
import hashlib
import http.server
import json
import os
import ssl
import sys
import time
import urllib.parse

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

ADDR, CERT, KEY, SIGNKEY, ISSUER, EXPIRES = sys.argv[1:7]
EXPIRES = int(EXPIRES)

ACCOUNTS = {
    None: [("public/*", {"pull"})],
    "proxyuser": [("private/*", {"pull"}), ("public/*", {"pull"})],
    "alice": [("private/*", {"pull", "push"}), ("public/*", {"pull", "push"}),
              ("alice/*", {"pull", "push"})],
}
PASSWORDS = {"proxyuser": "proxy-pw", "alice": "alice-pw"}

with open(SIGNKEY, "rb") as f:
    KEYOBJ = serialization.load_pem_private_key(f.read(), None)


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def libtrust_kid(pub):
    """The key id distribution derives from a public key (libtrust)."""
    spki = pub.public_bytes(serialization.Encoding.DER,
                            serialization.PublicFormat.SubjectPublicKeyInfo)
    s = base64.b32encode(hashlib.sha256(spki).digest()[:30]).decode().rstrip("=")
    return ":".join(s[i:i + 4] for i in range(0, len(s), 4))


KID = libtrust_kid(KEYOBJ.public_key())


def granted(user, name, wanted):
    allowed = set()
    for pattern, actions in ACCOUNTS.get(user, []):
        if fnmatch.fnmatch(name, pattern):
            allowed |= actions
    return sorted(set(wanted) & allowed)


def make_token(user, service, scopes):
    access = []
    for scope in scopes:
        parts = scope.split(":")
        if len(parts) < 3 or parts[0] != "repository":
            continue
        name, actions = ":".join(parts[1:-1]), parts[-1].split(",")
        access.append({"type": "repository", "name": name,
                       "actions": granted(user, name, actions)})
    now = int(time.time())
    header = {"typ": "JWT", "alg": "RS256", "kid": KID}
    claims = {"iss": ISSUER, "sub": user or "", "aud": service, "exp": now + EXPIRES,
              "nbf": now - 10, "iat": now, "jti": b64(os.urandom(12)), "access": access}
    signing_input = b64(json.dumps(header).encode()) + "." + b64(json.dumps(claims).encode())
    sig = KEYOBJ.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return signing_input + "." + b64(sig), now


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def answer(self, status, obj, user, scopes):
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if status == 401:
            self.send_header("WWW-Authenticate", 'Basic realm="drp-token-service"')
        self.end_headers()
        self.wfile.write(body)
        sys.stdout.write("%s user=%s scope=%s status=%d\n"
                         % (self.command, user or "-", ",".join(scopes) or "-", status))
        sys.stdout.flush()

    def issue(self, user, password, service, scopes):
        if user is not None and PASSWORDS.get(user) != password:
            return self.answer(401, {"errors": [{"code": "UNAUTHORIZED"}]}, user, scopes)
        token, now = make_token(user, service, scopes)
        self.answer(200, {"token": token, "access_token": token, "expires_in": EXPIRES,
                          "issued_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))},
                    user, scopes)

    def do_GET(self):
        u = urllib.parse.urlsplit(self.path)
        if u.path != "/token":
            return self.answer(404, {}, None, [])
        q = urllib.parse.parse_qs(u.query)
        user = password = None
        auth = self.headers.get("Authorization", "")
        if auth.lower().startswith("basic "):
            user, _, password = base64.b64decode(auth[6:]).decode().partition(":")
        self.issue(user, password, q.get("service", [""])[0], q.get("scope", []))

    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        form = urllib.parse.parse_qs(self.rfile.read(n).decode())
        if urllib.parse.urlsplit(self.path).path != "/token" or \
                form.get("grant_type", [""])[0] != "password":
            # No refresh tokens here: the client falls back to GET.
            return self.answer(404, {}, None, [])
        scopes = [s for v in form.get("scope", []) for s in v.split(" ") if s]
        self.issue(form.get("username", [None])[0], form.get("password", [""])[0],
                   form.get("service", [""])[0], scopes)


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
