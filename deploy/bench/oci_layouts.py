#!/usr/bin/env python3
"""Writes OCI image layouts for the registry benchmark.

    oci_layouts.py big DIR MIB      one image, one gzip layer of MIB MiB of random bytes
    oci_layouts.py small DIR COUNT  COUNT images, each a distinct ~1 KiB layer
"""
import gzip
import hashlib
import io
import json
import os
import sys
import tarfile


def blob(layout, data):
    digest = hashlib.sha256(data).hexdigest()
    path = os.path.join(layout, "blobs", "sha256", digest)
    with open(path, "wb") as f:
        f.write(data)
    return {"digest": "sha256:" + digest, "size": len(data)}


def layer_of(name, content):
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        info = tarfile.TarInfo(name)
        info.size = len(content)
        tar.addfile(info, io.BytesIO(content))
    tar_bytes = raw.getvalue()
    # Level 1: random content does not compress anyway.
    return tar_bytes, gzip.compress(tar_bytes, compresslevel=1, mtime=0)


def write_image(layout, name, content):
    os.makedirs(os.path.join(layout, "blobs", "sha256"), exist_ok=True)
    tar_bytes, gz = layer_of(name, content)
    layer = blob(layout, gz)
    config = blob(layout, json.dumps({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(tar_bytes).hexdigest()]},
    }).encode())
    manifest = blob(layout, json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": dict(config, mediaType="application/vnd.oci.image.config.v1+json"),
        "layers": [dict(layer, mediaType="application/vnd.oci.image.layer.v1.tar+gzip")],
    }).encode())
    index = {"schemaVersion": 2, "manifests": [dict(
        manifest, mediaType="application/vnd.oci.image.manifest.v1+json",
        annotations={"org.opencontainers.image.ref.name": "latest"})]}
    with open(os.path.join(layout, "index.json"), "w") as f:
        json.dump(index, f)
    with open(os.path.join(layout, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)


def main():
    kind, target, amount = sys.argv[1], sys.argv[2], int(sys.argv[3])
    if kind == "big":
        write_image(target, "data", os.urandom(amount << 20))
    else:
        for n in range(amount):
            write_image(os.path.join(target, str(n)), "file", os.urandom(1024) + str(n).encode())


if __name__ == "__main__":
    main()
