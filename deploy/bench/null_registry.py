#!/usr/bin/env python3
"""A registry that does no work, for the registry benchmark: it answers every push as the
distribution API says and throws the bytes away (no hashing, no disk). A client pushing
to it spends only its own time, so its figures are the ceiling for any registry.

    null_registry.py PORT
"""
import asyncio
import hashlib
import itertools
import sys
from urllib.parse import unquote

uploads = itertools.count()


async def read_body(reader, headers):
    """Reads a request body (Content-Length or chunked), keeping it only when small."""
    if headers.get("transfer-encoding", "").lower() == "chunked":
        while size := int((await reader.readline()).split(b";")[0], 16):
            await reader.readexactly(size + 2)
        while (await reader.readline()) not in (b"\r\n", b""):
            pass
        return b""
    length = int(headers.get("content-length", "0"))
    if length <= 1 << 20:
        return await reader.readexactly(length)
    while length:
        length -= len(await reader.read(min(length, 1 << 20)))
    return b""


def answer(method, target, body):
    """The status and headers a registry would answer with."""
    path, _, query = target.partition("?")
    if path == "/v2/":
        return "200 OK", {}
    if method == "POST" and path.endswith("/blobs/uploads/"):
        return "202 Accepted", {"Location": f"{path}{next(uploads)}", "Range": "0-0"}
    if method == "PATCH":
        return "202 Accepted", {"Location": path, "Range": "0-0"}
    if method == "PUT" and "/blobs/uploads/" in path:
        digest = unquote(dict(p.split("=", 1) for p in query.split("&") if "=" in p).get("digest", ""))
        return "201 Created", {"Location": path, "Docker-Content-Digest": digest}
    if method == "PUT" and "/manifests/" in path:
        return "201 Created", {"Location": path, "Docker-Content-Digest": "sha256:" + hashlib.sha256(body).hexdigest()}
    return "404 Not Found", {}


async def serve(reader, writer):
    while line := await reader.readline():
        try:
            method, target, _ = line.decode().split(" ", 2)
        except ValueError:  # not HTTP (a client trying TLS first): say so and hang up
            writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            break
        headers = {}
        while (header := await reader.readline()) not in (b"\r\n", b""):
            name, _, value = header.decode().partition(":")
            headers[name.strip().lower()] = value.strip()
        status, extra = answer(method, target, await read_body(reader, headers))
        head = f"HTTP/1.1 {status}\r\nContent-Length: 0\r\n"
        writer.write((head + "".join(f"{k}: {v}\r\n" for k, v in extra.items()) + "\r\n").encode())
        await writer.drain()
    writer.close()


async def main():
    server = await asyncio.start_server(serve, "127.0.0.1", int(sys.argv[1]), backlog=1024)
    await server.serve_forever()


asyncio.run(main())
