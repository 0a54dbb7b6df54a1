#!/usr/bin/env python3
"""Writes an OCI image layout with two refs, made only from local bytes:
`multi` (an index over linux/amd64 and linux/arm64) and `single` (one
linux/amd64 manifest). `salt` changes the content, hence every digest.

    make-layout.py OUT_DIR SALT
"""
import gzip, hashlib, io, json, os, sys, tarfile

root, salt = sys.argv[1], sys.argv[2]
os.makedirs(f"{root}/blobs/sha256", exist_ok=True)

def blob(data):
    d = hashlib.sha256(data).hexdigest()
    with open(f"{root}/blobs/sha256/{d}", "wb") as f:
        f.write(data)
    return "sha256:" + d, len(data)

def layer(text):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        data = text.encode()
        info = tarfile.TarInfo("hello.txt")
        info.size, info.mtime = len(data), 0
        t.addfile(info, io.BytesIO(data))
    raw = buf.getvalue()
    digest, size = blob(gzip.compress(raw, mtime=0))
    return digest, size, "sha256:" + hashlib.sha256(raw).hexdigest()

def image(arch, text):
    ld, ln, diff = layer(text)
    cfg = json.dumps({"architecture": arch, "os": "linux", "rootfs": {"type": "layers", "diff_ids": [diff]}, "config": {}}).encode()
    cd, cn = blob(cfg)
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cn},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": ld, "size": ln}],
    }).encode()
    return blob(manifest)

amd, arm, single = image("amd64", f"a-{salt}"), image("arm64", f"b-{salt}"), image("amd64", f"single-{salt}")
index = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [
    {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": amd[0], "size": amd[1], "platform": {"architecture": "amd64", "os": "linux"}},
    {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": arm[0], "size": arm[1], "platform": {"architecture": "arm64", "os": "linux"}},
]}).encode()
idx = blob(index)
with open(f"{root}/oci-layout", "w") as f:
    json.dump({"imageLayoutVersion": "1.0.0"}, f)
with open(f"{root}/index.json", "w") as f:
    json.dump({"schemaVersion": 2, "manifests": [
        {"mediaType": "application/vnd.oci.image.index.v1+json", "digest": idx[0], "size": idx[1], "annotations": {"org.opencontainers.image.ref.name": "multi"}},
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": single[0], "size": single[1], "annotations": {"org.opencontainers.image.ref.name": "single"}},
    ]}, f)
print(json.dumps({"amd64": amd[0], "arm64": arm[0], "index": idx[0], "single": single[0]}))
