"""Opens COUNT keep-alive connections from SOURCE (a 127.0.0.x address) to 127.0.0.1:PORT,
sends one request on each and reads its answer, prints `ready`, and holds them all open
until standard input closes.

    idle_connections.py PORT COUNT SOURCE
"""

import socket
import sys

port, count, source = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
request = b"GET / HTTP/1.1\r\nHost: bench.localhost\r\n\r\n"
held = []
for _ in range(count):
    connection = socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(source, 0))
    connection.sendall(request)
    answer = connection.recv(65536)
    if not answer.startswith(b"HTTP/1.1 200"):
        raise SystemExit(f"idle_connections.py: unexpected answer {answer[:80]!r}")
    held.append(connection)
print("ready", flush=True)
sys.stdin.read()
