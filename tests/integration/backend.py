"""A test backend: the local service a worker exposes through the tunnel.

A small HTTP/1.1 server on asyncio (keep-alive, Content-Length and chunked
request bodies) with these endpoints:

  GET  /bytes/N            N bytes of a fixed pattern (Content-Length), header X-Sha256
  GET  /chunked/N          N bytes of the pattern as a chunked body (8 KiB chunks)
  GET  /slow?lines=K       chunked, one line every 100 ms ("line i t=<ms>\\n")
  ANY  /echo[...]          200, JSON of the request: method, path, headers, body sha256 and length
  POST|PUT /mirror         the request body back (Content-Length), header X-Sha256
  POST|PUT /mirror-late    the same, but the body is read only after a second (the socket fills)
  GET  /close/N            N bytes, then the connection closes (no Content-Length)
  GET  /status/C           an empty response with status C
  GET  /ws                 WebSocket echo (text and binary; close echoes the code)
  GET  /hang               reads the request and never answers
  GET  /die                closes the connection without answering

Run by hand: /usr/bin/python3 tests/integration/backend.py PORT
"""

import asyncio
import base64
import hashlib
import json
import struct
import sys

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def pattern(n, seed=0):
    block = hashlib.sha256(str(seed).encode()).digest() * 2048  # 64 KiB
    out = bytearray()
    while len(out) < n:
        out += block
    return bytes(out[:n])


async def read_head(reader):
    data = await reader.readuntil(b"\r\n\r\n")
    lines = data.decode("latin-1").split("\r\n")
    method, target, version = lines[0].split(" ", 2)
    headers = []
    for line in lines[1:]:
        if not line:
            continue
        k, v = line.split(":", 1)
        headers.append((k.strip(), v.strip()))
    return method, target, version, headers


def hget(headers, name):
    for k, v in headers:
        if k.lower() == name:
            return v
    return None


async def read_body(reader, headers):
    te = hget(headers, "transfer-encoding")
    if te and "chunked" in te.lower():
        body = bytearray()
        while True:
            line = await reader.readuntil(b"\r\n")
            size = int(line.split(b";")[0].strip(), 16)
            if size == 0:
                while (await reader.readuntil(b"\r\n")) != b"\r\n":
                    pass
                return bytes(body)
            body += await reader.readexactly(size)
            await reader.readexactly(2)
    cl = hget(headers, "content-length")
    if cl:
        return await reader.readexactly(int(cl))
    return b""


def response(status, body=b"", headers=(), reason="OK"):
    head = "HTTP/1.1 %d %s\r\nContent-Length: %d\r\n" % (status, reason, len(body))
    for k, v in headers:
        head += "%s: %s\r\n" % (k, v)
    return head.encode() + b"\r\n" + body


async def ws_echo(reader, writer, headers):
    key = hget(headers, "sec-websocket-key")
    accept = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()
    writer.write(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  "Sec-WebSocket-Accept: %s\r\n\r\n" % accept).encode())
    await writer.drain()
    msg_op, msg = None, bytearray()
    while True:
        b0, b1 = await reader.readexactly(2)
        fin, op, masked, n = b0 & 0x80, b0 & 0x0F, b1 & 0x80, b1 & 0x7F
        if n == 126:
            n = struct.unpack(">H", await reader.readexactly(2))[0]
        elif n == 127:
            n = struct.unpack(">Q", await reader.readexactly(8))[0]
        mask = await reader.readexactly(4) if masked else b"\0\0\0\0"
        data = bytearray(await reader.readexactly(n))
        for i in range(n):
            data[i] ^= mask[i & 3]
        if op == 8:
            writer.write(bytes([0x88, len(data)]) + bytes(data))
            await writer.drain()
            writer.close()
            return
        if op == 9:
            writer.write(bytes([0x8A, len(data)]) + bytes(data))
            continue
        if op == 10:
            continue
        if op != 0:
            msg_op, msg = op, bytearray()
        msg += data
        if fin:
            n = len(msg)
            if n < 126:
                hdr = bytes([0x80 | msg_op, n])
            elif n < 65536:
                hdr = bytes([0x80 | msg_op, 126]) + struct.pack(">H", n)
            else:
                hdr = bytes([0x80 | msg_op, 127]) + struct.pack(">Q", n)
            writer.write(hdr + bytes(msg))
            await writer.drain()


async def handle(reader, writer):
    try:
        while True:
            try:
                method, target, version, headers = await read_head(reader)
            except (asyncio.IncompleteReadError, ConnectionError):
                return
            path = target.split("?", 1)[0]
            if path == "/ws" and (hget(headers, "upgrade") or "").lower() == "websocket":
                await ws_echo(reader, writer, headers)
                return
            if path == "/mirror-late":
                await asyncio.sleep(1)
            body = await read_body(reader, headers)
            close = (hget(headers, "connection") or "").lower() == "close" or version == "HTTP/1.0"
            if path.startswith("/bytes/"):
                data = pattern(int(path[7:]))
                out = response(200, b"" if method == "HEAD" else data,
                               [("X-Sha256", hashlib.sha256(data).hexdigest()),
                                ("Content-Type", "application/octet-stream")])
                if method == "HEAD":
                    out = out.replace(b"Content-Length: 0", b"Content-Length: %d" % len(data))
                writer.write(out)
            elif path.startswith("/chunked/"):
                data = pattern(int(path[9:]))
                writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Sha256: %s\r\n\r\n"
                             % hashlib.sha256(data).hexdigest().encode())
                for i in range(0, len(data), 8192):
                    part = data[i:i + 8192]
                    writer.write(b"%x\r\n%s\r\n" % (len(part), part))
                    await writer.drain()
                writer.write(b"0\r\n\r\n")
            elif path == "/slow":
                lines = 10
                if "lines=" in target:
                    lines = int(target.split("lines=")[1].split("&")[0])
                writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: text/plain\r\n\r\n")
                await writer.drain()
                loop = asyncio.get_running_loop()
                for i in range(lines):
                    line = b"line %d t=%d\n" % (i, int(loop.time() * 1000))
                    writer.write(b"%x\r\n%s\r\n" % (len(line), line))
                    await writer.drain()
                    await asyncio.sleep(0.1)
                writer.write(b"0\r\n\r\n")
            elif path.startswith("/echo"):
                info = {"method": method, "target": target, "version": version, "headers": headers,
                        "peer": list(writer.get_extra_info("peername") or ()),
                        "body_len": len(body), "body_sha256": hashlib.sha256(body).hexdigest()}
                writer.write(response(200, json.dumps(info).encode(), [("Content-Type", "application/json")]))
            elif path in ("/mirror", "/mirror-late"):
                writer.write(response(200, body, [("X-Sha256", hashlib.sha256(body).hexdigest())]))
            elif path.startswith("/close/"):
                data = pattern(int(path[7:]))
                writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + data)
                await writer.drain()
                writer.close()
                return
            elif path.startswith("/status/"):
                code = int(path[8:])
                if code in (204, 304):
                    writer.write(b"HTTP/1.1 %d X\r\n\r\n" % code)
                else:
                    writer.write(response(code, b"", reason="X"))
            elif path == "/hang":
                await asyncio.sleep(3600)
            elif path == "/die":
                writer.close()
                return
            else:
                writer.write(response(404, b"no such endpoint\n", reason="Not Found"))
            await writer.drain()
            if close:
                writer.close()
                return
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        try:
            writer.close()
        except Exception:
            pass


async def main(port):
    server = await asyncio.start_server(handle, "127.0.0.1", port, limit=1 << 20)
    print("backend listening on %d" % server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 0))
