"""Route changes every 100 ms, for the router benchmark; runs until killed.

    route_changes.py feed PORT HOST A B      a controller route feed (long poll, as the
                                             controller serves /v2/routes) for Skiff's
                                             router: HOST's backends go A, B, A+B, A, ...
    route_changes.py haproxy SOCKET A B      the same through HAProxy's runtime API: the
                                             server be/app moves between A and B
"""

import json
import socket
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PERIOD = 0.1


def feed(port, host, a, b):
    changed = threading.Condition()
    state = {"version": 1}
    choices = [[a], [b], [a, b]]

    def table():
        backends = choices[state["version"] % len(choices)]
        route = {"app": host.split(".")[0], "hosts": [host], "backends": backends, "maintenance": False}
        return {"version": state["version"], "routes": [route], "certificates": []}

    def tick():
        while True:
            time.sleep(PERIOD)
            with changed:
                state["version"] += 1
                changed.notify_all()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            query = urllib.parse.parse_qs(urllib.parse.urlparse(self.path).query)
            after = int(query.get("after", ["0"])[0])
            with changed:
                changed.wait_for(lambda: state["version"] != after, timeout=30)
                body = json.dumps(table()).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    threading.Thread(target=tick, daemon=True).start()
    ThreadingHTTPServer(("127.0.0.1", int(port)), Handler).serve_forever()


def haproxy(path, a, b):
    for n in range(1_000_000):
        host, port = (a if n % 2 else b).rsplit(":", 1)
        with socket.socket(socket.AF_UNIX) as control:
            control.connect(path)
            control.sendall(f"set server be/app addr {host} port {port}\n".encode())
            control.recv(4096)
        time.sleep(PERIOD)


if __name__ == "__main__":
    {"feed": feed, "haproxy": haproxy}[sys.argv[1]](*sys.argv[2:])
