#!/usr/bin/env python3
"""Loads dashboard pages in headless Chromium and prints what a person waits for.

    page_load.py BASE_URL SESSION_COOKIE RUNS LABEL=PATH...

Drives Debian's chromedriver over WebDriver (plain JSON over HTTP, so nothing beyond
Python's standard library is needed). For each page: the first load (stylesheet not yet
cached) and the median of RUNS loads after it, each read from the browser's Navigation
Timing entry: time to the first byte (responseStart) and to fully loaded (loadEventEnd,
the page and everything it loads, laid out), in milliseconds. Prints one benchmark row
per page, in the table deploy/bench/run.sh prints.
"""

import json
import socket
import statistics
import subprocess
import sys
import time
import urllib.request


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(driver, method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(driver + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as answer:
        return json.load(answer)["value"]


TIMING = """const n = performance.getEntriesByType('navigation')[0];
return [n.responseStart, n.loadEventEnd];"""


def main():
    base, cookie, runs, pages = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4:]
    name, value = cookie.split("=", 1)
    port = free_port()
    chromedriver = subprocess.Popen(["chromedriver", f"--port={port}"],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    driver = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                if call(driver, "GET", "/status")["ready"]:
                    break
            except OSError:
                pass
            time.sleep(0.1)
        options = {"args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                            "--window-size=1280,1100"]}
        session = call(driver, "POST", "/session",
                       {"capabilities": {"alwaysMatch": {"goog:chromeOptions": options}}})["sessionId"]
        at = f"/session/{session}"
        call(driver, "POST", f"{at}/url", {"url": f"{base}/dashboard/login"})
        call(driver, "POST", f"{at}/cookie", {"cookie": {"name": name, "value": value, "path": "/dashboard"}})
        for page in pages:
            label, path = page.split("=", 1)
            loads = []
            for _ in range(runs + 1):
                call(driver, "POST", f"{at}/url", {"url": base + path})
                loads.append(call(driver, "POST", f"{at}/execute/sync", {"script": TIMING, "args": []}))
            (first_byte, loaded), warm = loads[0], loads[1:]
            warm_byte = statistics.median(byte for byte, _ in warm)
            warm_loaded = statistics.median(done for _, done in warm)
            print(f"| dashboard: {label} in Chromium, first byte / fully loaded "
                  f"(first load {first_byte:.0f} / {loaded:.0f} ms) | "
                  f"{warm_byte:.0f} ms / {warm_loaded:.0f} ms | | | {runs} |")
        call(driver, "DELETE", at)
    finally:
        chromedriver.terminate()
        chromedriver.wait()


if __name__ == "__main__":
    main()
