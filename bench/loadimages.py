#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Push the many small images of bench/load.sh to a registry.

Image i is repository PREFIX/iNNNN, tag v1: a Docker schema2 manifest, a
config blob and two layers of deterministic random bytes (the registry does
not look inside layers; the proxy and nginx only move and hash them). Image
0 has fixed layer sizes (4 KiB and 32 KiB): the small blobs of the
small-request scenarios. The others' layers are log-uniform between 1 KiB
and 16 KiB, and between 16 KiB and MAX bytes.

Blobs go up in two requests each (POST .../blobs/uploads/, then PUT with
the digest), over one
kept-alive TLS connection to ADDR with SNI and name check HOST.

Prints one line per request a client pulling the image makes, for
bench/loadgen's request lists: "INDEX METHOD PATH SIZE", in pull order
(manifest by tag, config, layers), and "INDEX HEAD PATH SIZE" for the
manifest by tag and "INDEX GET PATH SIZE" by digest after them.

usage: loadimages.py ADDR HOST CA_FILE PREFIX COUNT MAX_LAYER > images.txt
"""

import hashlib
import http.client
import json
import math
import random
import socket
import ssl
import sys
import urllib.parse

MT = "application/vnd.docker.distribution.manifest.v2+json"
CT = "application/vnd.docker.container.image.v1+json"
LT = "application/vnd.docker.image.rootfs.diff.tar.gzip"


class Registry:
    def __init__(self, addr, host, ca):
        self.addr, self.host = addr, host
        self.ctx = ssl.create_default_context(cafile=ca)
        self.conn = None

    def _connect(self):
        c = http.client.HTTPSConnection(self.host, 443, context=self.ctx)
        raw = socket.create_connection((self.addr, 443))
        c.sock = self.ctx.wrap_socket(raw, server_hostname=self.host)
        self.conn = c

    def request(self, method, path, body=b"", headers=None, want=(200, 201, 202)):
        for attempt in (1, 2):
            if self.conn is None:
                self._connect()
            try:
                self.conn.request(method, path, body=body, headers=headers or {})
                r = self.conn.getresponse()
                data = r.read()
                break
            except (http.client.HTTPException, OSError):
                self.conn = None
                if attempt == 2:
                    raise
        if r.status not in want:
            sys.exit("loadimages: %s %s: %d %s" % (method, path, r.status, data[:200]))
        return r

    def blob(self, repo, data):
        d = "sha256:" + hashlib.sha256(data).hexdigest()
        r = self.request("POST", "/v2/%s/blobs/uploads/" % repo, b"", want=(202,))
        loc = urllib.parse.urlsplit(r.getheader("Location"))
        path = loc.path + "?" + (loc.query + "&" if loc.query else "") + "digest=" + d
        self.request("PUT", path, data, {"Content-Type": "application/octet-stream"},
                     want=(201,))
        return d


def main():
    addr, host, ca, prefix = sys.argv[1:5]
    count, max_layer = int(sys.argv[5]), int(sys.argv[6])
    reg = Registry(addr, host, ca)
    for i in range(count):
        rnd = random.Random("drp-load-%d" % i)
        repo = "%s/i%04d" % (prefix, i)
        if i == 0:
            sizes = [4096, 32768]
        else:
            sizes = [int(math.exp(rnd.uniform(math.log(1024), math.log(16384)))),
                     int(math.exp(rnd.uniform(math.log(16384), math.log(max(max_layer, 16385)))))]
        layers = []
        for n, size in enumerate(sizes):
            data = rnd.randbytes(size)
            layers.append((reg.blob(repo, data), size))
        config = json.dumps({"architecture": "amd64", "os": "linux",
                             "config": {"Labels": {"drp.load": str(i)}},
                             "rootfs": {"type": "layers",
                                        "diff_ids": [d for d, _ in layers]}},
                            separators=(",", ":"), sort_keys=True).encode()
        cdigest = reg.blob(repo, config)
        manifest = json.dumps({"schemaVersion": 2, "mediaType": MT,
                               "config": {"mediaType": CT, "size": len(config),
                                          "digest": cdigest},
                               "layers": [{"mediaType": LT, "size": s, "digest": d}
                                          for d, s in layers]},
                              separators=(",", ":"), sort_keys=True).encode()
        mdigest = "sha256:" + hashlib.sha256(manifest).hexdigest()
        reg.request("PUT", "/v2/%s/manifests/v1" % repo, manifest,
                    {"Content-Type": MT}, want=(201,))
        base = "/v2/" + repo
        print(i, "GET", base + "/manifests/v1", len(manifest))
        print(i, "GET", base + "/blobs/" + cdigest, len(config))
        for d, s in layers:
            print(i, "GET", base + "/blobs/" + d, s)
        print(i, "HEAD", base + "/manifests/v1", len(manifest))
        print(i, "GET", base + "/manifests/" + mdigest, len(manifest))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
