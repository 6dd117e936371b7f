"""Opens COUNT keep-alive connections from SOURCE (a 127.0.0.x address) to 127.0.0.1:PORT,
sends one request on each and reads its answer, prints `ready`, and holds them all open
until standard input closes.

    idle_connections.py PORT COUNT SOURCE [h2 | tls CA_FILE]

With `h2`, each connection speaks HTTP/2 with prior knowledge (h2c): the preface, the
settings (and the acknowledgement of the server's), one GET on stream 1, its answer. With
`tls`, each is HTTPS (the server's certificate for bench.localhost, signed by CA_FILE).
"""

import socket
import ssl
import struct
import sys

port, count, source = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
h2 = sys.argv[4:] == ["h2"]
tls = ssl.create_default_context(cafile=sys.argv[5]) if sys.argv[4:5] == ["tls"] else None
request = b"GET / HTTP/1.1\r\nHost: bench.localhost\r\n\r\n"


def frame(kind, flags, stream, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload


# :method GET, :scheme http, :path / (static table), :authority bench.localhost (literal).
H2_REQUEST = (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + frame(0x4, 0, 0)
              + frame(0x1, 0x5, 1, b"\x82\x86\x84\x41\x0fbench.localhost"))


def read_exactly(connection, n):
    data = b""
    while len(data) < n:
        chunk = connection.recv(n - len(data))
        if not chunk:
            raise SystemExit("idle_connections.py: the server closed an HTTP/2 connection")
        data += chunk
    return data


def h2_exchange(connection):
    """Sends the request and reads frames until stream 1 ends; checks it answered 200."""
    connection.sendall(H2_REQUEST)
    status = None
    while True:
        head = read_exactly(connection, 9)
        length = struct.unpack(">I", b"\0" + head[:3])[0]
        kind, flags, stream = head[3], head[4], struct.unpack(">I", head[5:])[0] & 0x7FFFFFFF
        payload = read_exactly(connection, length)
        if kind == 0x4 and not flags & 0x1:
            connection.sendall(frame(0x4, 0x1, 0))
        if kind == 0x1 and stream == 1:
            # :status 200 is the static table's entry 8.
            status = payload[:1]
        if kind == 0x7:
            raise SystemExit(f"idle_connections.py: GOAWAY {payload!r}")
        if stream == 1 and kind in (0x0, 0x1) and flags & 0x1:
            break
    if status != b"\x88":
        raise SystemExit(f"idle_connections.py: unexpected HTTP/2 answer {status!r}")


held = []
for _ in range(count):
    connection = socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(source, 0))
    if tls:
        connection = tls.wrap_socket(connection, server_hostname="bench.localhost")
    if h2:
        h2_exchange(connection)
    else:
        connection.sendall(request)
        answer = connection.recv(65536)
        if not answer.startswith(b"HTTP/1.1 200"):
            raise SystemExit(f"idle_connections.py: unexpected answer {answer[:80]!r}")
    held.append(connection)
print("ready", flush=True)
sys.stdin.read()
