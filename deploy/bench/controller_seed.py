"""Fills a controller with APPS apps and RELEASES releases in all, through its API.

Each app gets an image release (scaled to no containers, so that the measurement is the
controller's and its database's, not the containers'), then config changes until the
releases add up. Prints the app names, one per line.

    python3 controller_seed.py URL TOKEN APPS RELEASES [PREFIX]

Apps are named PREFIX0000, PREFIX0001, … (PREFIX: `bench`).
"""

import http.client
import json
import sys
import threading
import urllib.parse
from concurrent.futures import ThreadPoolExecutor

url, token, apps, releases = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
prefix = sys.argv[5] if len(sys.argv) > 5 else "bench"
parsed = urllib.parse.urlparse(url)
local = threading.local()


def call(method, path, body):
    if not hasattr(local, "connection"):
        local.connection = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=60)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    local.connection.request(method, path, json.dumps(body), headers)
    response = local.connection.getresponse()
    answer = response.read()
    if response.status >= 300:
        raise SystemExit(f"{method} {path}: {response.status} {answer[:200]!r}")


def seed(index):
    name = f"{prefix}{index:04d}"
    call("POST", "/v2/apps", {"name": name})
    call("POST", f"/v2/apps/{name}/deploy", {"image": "busybox:bench"})
    call("POST", f"/v2/apps/{name}/scale", {"web": 0})
    changes = releases // apps - 1 + (1 if index < releases % apps else 0)
    for change in range(changes):
        call("PATCH", f"/v2/apps/{name}/config", {"SEED": str(change)})
    return name


with ThreadPoolExecutor(8) as pool:
    for name in pool.map(seed, range(apps)):
        print(name)
