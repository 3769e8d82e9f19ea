#!/usr/bin/env python3
"""Unique bytes of one contender's images, for scripts/bench-disk.sh.

    bench-disk-measure.py --prefix NAME [--ids FILE] [--exclude IMAGE]...

The images counted: those named NAME* or dockwarm/NAME*, those labelled
dev.dockwarm.project=NAME*, and every image ID listed in FILE that still exists (untagged ones
included: a rebuild under the same name leaves the old image on disk). Layers are identified by
chain ID (from RootFS.Layers) and sized from the engine's image history (each non-empty entry's
Size is that layer's DiffSize), a layer shared by several images counted once; layers that an
--exclude image holds (the base image) are not counted. The same method dockwarm uses for its
budget (src/disk.rs), written again here so that the benchmark does not grade dockwarm with
dockwarm's own arithmetic. Prints: bytes images
"""
import argparse
import hashlib
import http.client
import json
import socket
import urllib.parse

META = {"ENV", "LABEL", "CMD", "ENTRYPOINT", "EXPOSE", "USER", "ARG", "ONBUILD",
        "STOPSIGNAL", "HEALTHCHECK", "SHELL", "VOLUME", "MAINTAINER"}


class Unix(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("docker")
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.path)


def get(path):
    c = Unix("/var/run/docker.sock")
    c.request("GET", "/v1.41" + path)
    r = c.getresponse()
    body = r.read()
    c.close()
    if r.status == 404:
        return None
    if r.status != 200:
        raise SystemExit(f"{path}: HTTP {r.status} {body[:200]!r}")
    return json.loads(body)


def chains(diff_ids):
    out = []
    for d in diff_ids:
        out.append(d if not out else "sha256:" + hashlib.sha256(f"{out[-1]} {d}".encode()).hexdigest())
    return out


def metadata_only(created_by):
    t = created_by.strip()
    if t.startswith("/bin/sh -c #(nop)"):
        t = t[len("/bin/sh -c #(nop)"):].strip()
    return (t.split() or [""])[0] in META


def layers(image_id):
    inspect = get(f"/images/{image_id}/json")
    if inspect is None:
        return None
    keys = chains(inspect.get("RootFS", {}).get("Layers") or [])
    hist = list(reversed(get(f"/images/{image_id}/history") or []))
    like = [h["Size"] > 0 or not metadata_only(h.get("CreatedBy", "")) for h in hist]
    if sum(like) == len(keys) and keys:
        sizes = [h["Size"] for h, l in zip(hist, like) if l]
        return list(zip(keys, sizes))
    nonzero = [h["Size"] for h in hist if h["Size"] > 0]
    if len(nonzero) == len(keys) and keys:
        return list(zip(keys, nonzero))
    # doubt: the image's own, except the leading certain layers
    out, certain = [], True
    for i, h in enumerate(hist):
        if h["Size"] == 0:
            certain = False
            continue
        key = keys[len(out)] if certain and len(out) < len(keys) else f"{image_id}/{i}"
        out.append((key, h["Size"]))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--prefix", required=True)
    ap.add_argument("--ids")
    ap.add_argument("--exclude", action="append", default=[])
    a = ap.parse_args()
    ids = set()
    for img in get("/images/json") or []:
        names = [t for t in img.get("RepoTags") or [] if t != "<none>:<none>"]
        label = (img.get("Labels") or {}).get("dev.dockwarm.project", "")
        if label.startswith(a.prefix) or any(
            n.startswith(a.prefix) or n.startswith("dockwarm/" + a.prefix) for n in names
        ):
            ids.add(img["Id"])
    if a.ids:
        try:
            with open(a.ids) as f:
                ids.update(l.strip() for l in f if l.strip())
        except FileNotFoundError:
            pass
    foreign = set()
    for ref in a.exclude:
        ex = get(f"/images/{urllib.parse.quote(ref, safe='')}/json")
        if ex:
            foreign.update(chains(ex["RootFS"]["Layers"]))
    seen, count = {}, 0
    for i in sorted(ids):
        l = layers(i)
        if l is None:
            continue
        count += 1
        for k, s in l:
            if k not in foreign:
                seen[k] = max(seen.get(k, 0), s)
    print(sum(seen.values()), count)


if __name__ == "__main__":
    main()
