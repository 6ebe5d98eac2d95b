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

With CONFIG (a JSON file), the service emulates a particular registry's
token endpoint instead (Docker Hub, quay.io, gcr.io, ...):
  listen       "HOST:PORT" to listen on instead of ADDR:443
  tls          false: plain HTTP (behind a TLS front such as nginx)
  path         the endpoint's path ("/token", "/v2/auth", "/v2/token")
  services     the accepted service= values; others get 400
  accounts     {"NAME": {"password": "..." or "password_file": "PATH",
                         "grants": [["GLOB", ["pull", ...]], ...]}}
               password_file: the password is the file's content with one
               trailing newline removed, compared byte for byte
  anonymous    grants without credentials
  denied       "downscope" (default): actions not granted are left out of
               a 200 token; "403": a scope with no granted action at all
               is refused with 403 DENIED (nothing is issued)
  fields       the answer's fields (default: token, access_token,
               expires_in, issued_at); quay.io answers only "token"
  expires_in   seconds (default: EXPIRES-IN)
  oauth_post   false: POST is not supported (404)
  json_key     true: the user "_json_key" must send a service-account
               JSON key (type "service_account", a client_email)
  bad_credentials  the JSON body of the 401 for wrong credentials
  x5c          a PEM certificate file: the JWT header carries it as "x5c"
               (as Docker Hub's tokens do, which makes them long) instead
               of "kid"
  issued_at_ns true: issued_at with nanoseconds ("...T12:00:00.123456789Z")
  storage      the registry's storage root: an account that may not push
               to a repository gets pull only if it exists there (Docker
               Hub and quay.io grant nothing on a repository that does not
               exist, so a typo looks like a private repository)

Every request is logged to stdout, one line:
  METHOD user=NAME|- scope=SCOPE[,SCOPE...] status=CODE service=S|-
so the tests can count token fetches per scope and see whose they were.

usage: tokenserver.py ADDR CERT KEY SIGNING-KEY ISSUER EXPIRES-IN [CONFIG]
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
CONF = {"listen": "%s:443" % ADDR, "tls": True, "path": "/token", "services": None,
        "denied": "downscope", "fields": ["token", "access_token", "expires_in", "issued_at"],
        "expires_in": EXPIRES, "oauth_post": True, "json_key": False,
        "bad_credentials": {"errors": [{"code": "UNAUTHORIZED"}]},
        "x5c": None, "issued_at_ns": False, "storage": None}


def load_config(path):
    """Replaces the built-in accounts by those of a CONFIG file."""
    with open(path) as f:
        conf = json.load(f)
    CONF.update({k: v for k, v in conf.items() if k not in ("accounts", "anonymous")})
    ACCOUNTS.clear()
    PASSWORDS.clear()
    ACCOUNTS[None] = [(g, set(a)) for g, a in conf.get("anonymous", [])]
    for name, acct in conf.get("accounts", {}).items():
        if "password_file" in acct:
            with open(acct["password_file"], "rb") as f:
                pw = f.read().decode()
            PASSWORDS[name] = pw[:-1] if pw.endswith("\n") else pw
        else:
            PASSWORDS[name] = acct["password"]
        ACCOUNTS[name] = [(g, set(a)) for g, a in acct.get("grants", [])]


if len(sys.argv) > 7:
    load_config(sys.argv[7])

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
JWT_HEADER = {"typ": "JWT", "alg": "RS256", "kid": KID}
if CONF["x5c"]:
    from cryptography import x509
    with open(CONF["x5c"], "rb") as f:
        der = x509.load_pem_x509_certificate(f.read()).public_bytes(serialization.Encoding.DER)
    JWT_HEADER = {"typ": "JWT", "alg": "RS256", "x5c": [base64.b64encode(der).decode()]}


def granted(user, name, wanted):
    allowed = set()
    for pattern, actions in ACCOUNTS.get(user, []):
        if fnmatch.fnmatch(name, pattern):
            allowed |= actions
    if CONF["storage"] and "push" not in allowed and not os.path.isdir(
            os.path.join(CONF["storage"], "docker/registry/v2/repositories", name)):
        allowed.discard("pull")
    return sorted(set(wanted) & allowed)


def repository_scopes(scopes):
    """(name, actions) of each repository scope."""
    out = []
    for scope in scopes:
        parts = scope.split(":")
        if len(parts) < 3 or parts[0] != "repository":
            continue
        out.append((":".join(parts[1:-1]), parts[-1].split(",")))
    return out


def make_token(user, service, scopes):
    access = [{"type": "repository", "name": name, "actions": granted(user, name, actions)}
              for name, actions in repository_scopes(scopes)]
    now = int(time.time())
    header = JWT_HEADER
    claims = {"iss": ISSUER, "sub": user or "", "aud": service,
              "exp": now + CONF["expires_in"], "nbf": now - 10, "iat": now,
              "jti": b64(os.urandom(12)), "access": access}
    signing_input = b64(json.dumps(header).encode()) + "." + b64(json.dumps(claims).encode())
    sig = KEYOBJ.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return signing_input + "." + b64(sig), now


def json_key_ok(password):
    """A service-account key as Google issues them."""
    try:
        key = json.loads(password)
    except ValueError:
        return False
    return isinstance(key, dict) and key.get("type") == "service_account" and \
        bool(key.get("client_email")) and bool(key.get("private_key"))


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def answer(self, status, obj, user, scopes, service=None):
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if status == 401:
            self.send_header("WWW-Authenticate", 'Basic realm="drp-token-service"')
        self.end_headers()
        self.wfile.write(body)
        sys.stdout.write("%s user=%s scope=%s status=%d service=%s\n"
                         % (self.command, user or "-", ",".join(scopes) or "-", status,
                            service or "-"))
        sys.stdout.flush()

    def issue(self, user, password, service, scopes):
        if CONF["services"] is not None and service not in CONF["services"]:
            return self.answer(400, {"errors": [{"code": "INVALID_REQUEST",
                                                 "message": "unknown service"}]},
                               user, scopes, service)
        if user is not None and (PASSWORDS.get(user) != password or
                                 (CONF["json_key"] and user == "_json_key" and
                                  not json_key_ok(password))):
            return self.answer(401, CONF["bad_credentials"], user, scopes, service)
        if CONF["denied"] == "403":
            for name, actions in repository_scopes(scopes):
                if not granted(user, name, actions):
                    return self.answer(403, {"errors": [{
                        "code": "DENIED",
                        "message": "Permission denied for repository %s" % name}]},
                        user, scopes, service)
        token, now = make_token(user, service, scopes)
        issued = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now))
        issued += ".%09dZ" % (time.time_ns() % 10**9) if CONF["issued_at_ns"] else "Z"
        full = {"token": token, "access_token": token, "expires_in": CONF["expires_in"],
                "issued_at": issued}
        self.answer(200, {k: full[k] for k in CONF["fields"]}, user, scopes, service)

    def do_GET(self):
        u = urllib.parse.urlsplit(self.path)
        if u.path != CONF["path"]:
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
        if urllib.parse.urlsplit(self.path).path != CONF["path"] or not CONF["oauth_post"] or \
                form.get("grant_type", [""])[0] != "password":
            # No refresh tokens here: the client falls back to GET.
            return self.answer(404, {}, None, [])
        scopes = [s for v in form.get("scope", []) for s in v.split(" ") if s]
        self.issue(form.get("username", [None])[0], form.get("password", [""])[0],
                   form.get("service", [""])[0], scopes)


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True


def main():
    host, _, port = CONF["listen"].rpartition(":")
    srv = Server((host, int(port)), Handler)
    if CONF["tls"]:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(CERT, KEY)
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
