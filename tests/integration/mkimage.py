#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Build the deterministic test images of the integration tests.

Every image is written as an OCI image layout (one directory per image,
index.json naming exactly one manifest without a tag, the only form in
which skopeo 1.9's oci: transport accepts Docker media types), and the
digests the tests compare against are written as shell assignments.

Layer content is incompressible (Mersenne Twister bytes from a fixed
seed) so that sizes are real, and everything that could vary between
runs (tar mtimes, owners, gzip header time) is pinned, so the same
sizes give the same digests on every run.

usage: mkimage.py OUTDIR LARGE_MIB > images.env
"""

import gzip
import hashlib
import io
import json
import os
import random
import sys
import tarfile

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"

CHUNK = 1 << 20


class Layout:
    """An OCI image layout directory being filled with blobs."""

    def __init__(self, path):
        self.path = path
        os.makedirs(os.path.join(path, "blobs", "sha256"), exist_ok=True)
        with open(os.path.join(path, "oci-layout"), "w") as f:
            f.write('{"imageLayoutVersion":"1.0.0"}')

    def put(self, data):
        """Store bytes as a blob; returns (digest, size)."""
        hexd = hashlib.sha256(data).hexdigest()
        with open(os.path.join(self.path, "blobs", "sha256", hexd), "wb") as f:
            f.write(data)
        return "sha256:" + hexd, len(data)

    def put_json(self, obj):
        return self.put(json.dumps(obj, separators=(",", ":"), sort_keys=True).encode())

    def finish(self, media_type, digest, size):
        """index.json names the one top-level manifest, untagged."""
        index = {
            "schemaVersion": 2,
            "manifests": [{"mediaType": media_type, "digest": digest, "size": size}],
        }
        with open(os.path.join(self.path, "index.json"), "w") as f:
            json.dump(index, f)


class HashingWriter(io.RawIOBase):
    """A file object that hashes and counts what passes through it."""

    def __init__(self, f):
        self.f = f
        self.h = hashlib.sha256()
        self.n = 0

    def writable(self):
        return True

    def write(self, b):
        self.f.write(b)
        self.h.update(b)
        self.n += len(b)
        return len(b)


class KeystreamReader(io.RawIOBase):
    """size bytes of deterministic, incompressible data from seed."""

    def __init__(self, seed, size):
        self.rng = random.Random(seed)
        self.left = size

    def readable(self):
        return True

    def readinto(self, b):
        n = min(len(b), self.left, CHUNK)
        if n <= 0:
            return 0
        b[:n] = self.rng.randbytes(n)
        self.left -= n
        return n


def tar_member(tf, name, size, reader):
    ti = tarfile.TarInfo(name)
    ti.size = size
    ti.mtime = 0
    ti.mode = 0o644
    ti.uid = ti.gid = 0
    ti.uname = ti.gname = "root"
    tf.addfile(ti, reader)


def make_layer(layout, files):
    """files: list of (path, seed, size) for keystream files or (path, bytes).

    Streams tar -> gzip -> blob file, so a large layer never sits in memory.
    Returns (digest, size, diff_id).
    """
    tmp = os.path.join(layout.path, "layer.tmp")
    with open(tmp, "wb") as raw:
        comp = HashingWriter(raw)
        # mtime=0 and no file name keep the gzip header constant; level 1
        # because the content is incompressible anyway.
        with gzip.GzipFile(fileobj=comp, mode="wb", compresslevel=1, mtime=0, filename="") as gz:
            plain = HashingWriter(gz)
            with tarfile.open(fileobj=plain, mode="w|", format=tarfile.USTAR_FORMAT) as tf:
                dirs = sorted({os.path.dirname(e[0]) for e in files} - {""})
                for d in dirs:
                    ti = tarfile.TarInfo(d + "/")
                    ti.type = tarfile.DIRTYPE
                    ti.mode = 0o755
                    ti.mtime = 0
                    ti.uname = ti.gname = "root"
                    tf.addfile(ti)
                for entry in files:
                    if len(entry) == 3:
                        path, seed, size = entry
                        tar_member(tf, path, size, io.BufferedReader(KeystreamReader(seed, size)))
                    else:
                        path, data = entry
                        tar_member(tf, path, len(data), io.BytesIO(data))
    digest = "sha256:" + comp.h.hexdigest()
    os.rename(tmp, os.path.join(layout.path, "blobs", "sha256", digest[7:]))
    return digest, comp.n, "sha256:" + plain.h.hexdigest()


def image_config(arch, diff_ids, label):
    return {
        "architecture": arch,
        "os": "linux",
        "created": "1970-01-01T00:00:00Z",
        "config": {"Env": ["PATH=/usr/bin:/bin"], "Labels": {"drp.test": label}},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created": "1970-01-01T00:00:00Z", "created_by": "mkimage.py " + label}
                    for _ in diff_ids],
    }


def single(layout, label, layer_specs, arch="amd64", oci=False):
    """One image manifest with the given layers; returns (mdigest, msize, all blob digests)."""
    layers = [make_layer(layout, spec) for spec in layer_specs]
    cdigest, csize = layout.put_json(image_config(arch, [l[2] for l in layers], label))
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST if oci else DOCKER_MANIFEST,
        "config": {"mediaType": OCI_CONFIG if oci else DOCKER_CONFIG,
                   "size": csize, "digest": cdigest},
        "layers": [{"mediaType": OCI_LAYER if oci else DOCKER_LAYER,
                    "size": l[1], "digest": l[0]} for l in layers],
    }
    mdigest, msize = layout.put_json(manifest)
    return mdigest, msize, [cdigest] + [l[0] for l in layers], [l[0] for l in layers]


def emit(name, value):
    print("%s='%s'" % (name, value))


def main():
    out, large_mib = sys.argv[1], int(sys.argv[2])

    # small: Docker schema2, two layers of 512 KiB and a text file.
    lay = Layout(os.path.join(out, "small"))
    d, s, blobs, layers = single(lay, "small", [
        [("small/a.bin", "drp-small-a", 512 * 1024)],
        [("small/b.bin", "drp-small-b", 512 * 1024),
         ("small/hello.txt", b"hello from docker-registry-proxy tests\n")],
    ])
    lay.finish(DOCKER_MANIFEST, d, s)
    emit("SMALL_DIGEST", d)
    emit("SMALL_BLOBS", " ".join(blobs))
    emit("SMALL_LAYERS", " ".join(layers))

    # large: one big layer, for streaming and memory-bound tests.
    lay = Layout(os.path.join(out, "large"))
    d, s, blobs, layers = single(lay, "large", [
        [("large/blob.bin", "drp-large", large_mib * 1024 * 1024)],
    ])
    lay.finish(DOCKER_MANIFEST, d, s)
    emit("LARGE_DIGEST", d)
    emit("LARGE_BLOBS", " ".join(blobs))
    emit("LARGE_LAYER", layers[0])

    # multi: an OCI index over linux/amd64 and linux/arm64 OCI manifests.
    lay = Layout(os.path.join(out, "multi"))
    entries = []
    for arch in ("amd64", "arm64"):
        d, s, blobs, layers = single(lay, "multi-" + arch, [
            [("multi/%s.bin" % arch, "drp-multi-" + arch, 256 * 1024)],
        ], arch=arch, oci=True)
        entries.append({"mediaType": OCI_MANIFEST, "digest": d, "size": s,
                        "platform": {"architecture": arch, "os": "linux"}})
        emit("MULTI_%s_DIGEST" % arch.upper(), d)
        emit("MULTI_%s_BLOBS" % arch.upper(), " ".join(blobs))
    d, s = lay.put_json({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries})
    lay.finish(OCI_INDEX, d, s)
    emit("MULTI_DIGEST", d)

    # push: never pushed by the set-up, so pushing it through the proxy
    # really uploads every blob (POST, PATCH, PUT).
    lay = Layout(os.path.join(out, "push"))
    d, s, blobs, layers = single(lay, "push", [
        [("push/p.bin", "drp-push", 3 * 1024 * 1024)],
    ])
    lay.finish(DOCKER_MANIFEST, d, s)
    emit("PUSH_DIGEST", d)
    emit("PUSH_BLOBS", " ".join(blobs))


if __name__ == "__main__":
    main()
