#!/usr/bin/env python3
"""An ASP relay function in Python, standard library only (SPEC.md section 15).

The relay (asp-relay) holds the clients' WebSocket sessions and calls this
server once per INVOKE: `POST /invoke` with a JSON body

    {"connection_id", "request_id", "tool", "args", "meta", "timeout_ms", "state"}

The response body is streamed back to the client as STREAM frames, and its end
becomes COMPLETE. Headers the relay reads: `X-Cpu-Time` (CPU time, e.g. `12ms`),
`X-Asp-State` (base64url of the state to keep for the connection), and
`Content-Type: application/vnd.asp.frames` when the body is ASP frames the
function wrote itself (progress, tool pushes, a result value).

Tools:
  echo        the arguments back, as JSON
  stream      args {"text", "delay_ms"}: one chunk per word, X-Cpu-Time set
  count       a counter kept in the connection's state (re-hydrated each call)
  push_tool   answers at once, then pushes a TOOL_DEF through the relay's
              management API after the call has ended
  frames      frames mode: progress, output, and a result map
  slow        a chunk every 50 ms for 10 s; records if the relay aborted it
  fail        answers HTTP 500
  truncate    declares 1000 bytes, sends 10, closes
  hang        never answers (until args.seconds)
  trickle     one byte every 200 ms, for a minute

`GET /observed` returns what the function saw (aborted requests, lifecycle
calls), so tests can check it.

Run: python3 function.py --port 8080 [--management-url URL --management-secret S]
It prints `listening http://127.0.0.1:PORT` when ready.
"""

import argparse
import base64
import json
import struct
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

FRAMES = "application/vnd.asp.frames"
STREAM, TOOL_DEF, ERROR, COMPLETE = 0x3, 0x5, 0x6, 0x7
PROGRESS_FLAG = 0x01


# ----------------------------------------------------------------- MsgPack
def msgpack(value):
    """Enough MsgPack for ASP payloads: nil, bool, int, float, str, bin, array, map."""
    if value is None:
        return b"\xc0"
    if value is True:
        return b"\xc3"
    if value is False:
        return b"\xc2"
    if isinstance(value, int):
        if 0 <= value < 128:
            return bytes([value])
        if -32 <= value < 0:
            return struct.pack(">b", value)
        if 0 <= value < 2**64:
            return b"\xcf" + struct.pack(">Q", value)
        return b"\xd3" + struct.pack(">q", value)
    if isinstance(value, float):
        return b"\xcb" + struct.pack(">d", value)
    if isinstance(value, str):
        raw = value.encode()
        n = len(raw)
        if n < 32:
            return bytes([0xA0 | n]) + raw
        return b"\xdb" + struct.pack(">I", n) + raw
    if isinstance(value, (bytes, bytearray)):
        return b"\xc6" + struct.pack(">I", len(value)) + bytes(value)
    if isinstance(value, (list, tuple)):
        out = b"\xdd" + struct.pack(">I", len(value))
        return out + b"".join(msgpack(v) for v in value)
    if isinstance(value, dict):
        out = b"\xdf" + struct.pack(">I", len(value))
        return out + b"".join(msgpack(k) + msgpack(v) for k, v in value.items())
    raise TypeError(f"cannot encode {type(value)}")


def frame(kind, request_id, payload, flags=0):
    """An ASP/1 frame: 8-byte header (version 1, type, flags, id, length), payload."""
    if not isinstance(payload, (bytes, bytearray)):
        payload = msgpack(payload)
    return struct.pack(">BBHI", 0x10 | kind, flags, request_id, len(payload)) + payload


# --------------------------------------------------------------- the server
class Observed:
    def __init__(self):
        self.lock = threading.Lock()
        self.aborted = []
        self.completed = []
        self.connects = []
        self.disconnects = []

    def add(self, name, value):
        with self.lock:
            getattr(self, name).append(value)

    def snapshot(self):
        with self.lock:
            return {
                "aborted": list(self.aborted),
                "completed": list(self.completed),
                "connects": list(self.connects),
                "disconnects": list(self.disconnects),
            }


OBSERVED = Observed()
MANAGEMENT = {"url": None, "secret": None}


def push_tool_later(connection_id, name):
    """After the call has ended: TOOL_DEF through the relay's management API."""
    time.sleep(0.05)
    tool = {"name": name, "desc": "pushed by the function after its call ended"}
    body = frame(TOOL_DEF, 0, {"op": "add", "tools": [tool]})
    request = urllib.request.Request(
        f"{MANAGEMENT['url']}/v1/connections/{connection_id}/frames",
        data=body,
        method="POST",
        headers={"Authorization": f"Bearer {MANAGEMENT['secret']}", "Content-Type": FRAMES},
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        OBSERVED.add("completed", {"push": response.status})


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    # -- helpers
    def body_json(self):
        length = int(self.headers.get("Content-Length") or 0)
        return json.loads(self.rfile.read(length) or b"{}")

    def answer(self, status, body=b"", headers=None):
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def start_chunked(self, headers=None):
        self.send_response(200)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

    def chunk(self, data):
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def end_chunked(self):
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    # -- routes
    def do_GET(self):
        if self.path == "/observed":
            self.answer(200, json.dumps(OBSERVED.snapshot()).encode(), {"Content-Type": "application/json"})
        else:
            self.answer(404, b"not found")

    def do_POST(self):
        request = self.body_json()
        if self.path == "/connect":
            OBSERVED.add("connects", request["connection_id"])
            state = base64.urlsafe_b64encode(json.dumps({"count": 100}).encode()).decode().rstrip("=")
            return self.answer(200, b"", {"X-Asp-State": state})
        if self.path == "/disconnect":
            OBSERVED.add("disconnects", request["connection_id"])
            return self.answer(200)
        if self.path != "/invoke":
            return self.answer(404, b"not found")
        tool = getattr(self, "tool_" + request["tool"], None)
        if tool is None:
            return self.answer(404, f"no tool {request['tool']}".encode())
        try:
            tool(request, request.get("args"))
        except (BrokenPipeError, ConnectionResetError):
            OBSERVED.add("aborted", request["request_id"])

    # -- tools
    def tool_echo(self, request, args):
        self.answer(200, json.dumps(args).encode(), {"Content-Type": "application/json"})

    def tool_stream(self, request, args):
        started = time.process_time()
        words = [w + " " for w in args.get("text", "agents stream tokens").split()]
        cpu = time.process_time() - started + 0.012  # plus a pretend model call
        self.start_chunked({"X-Cpu-Time": f"{cpu * 1000:.3f}ms"})
        for word in words:
            self.chunk(word.encode())
            time.sleep(args.get("delay_ms", 0) / 1000)
        self.end_chunked()

    def tool_count(self, request, args):
        state = request.get("state")
        count = 0
        if state:
            count = json.loads(base64.urlsafe_b64decode(state + "=" * (-len(state) % 4)))["count"]
        count += 1
        new_state = base64.urlsafe_b64encode(json.dumps({"count": count}).encode()).decode().rstrip("=")
        self.answer(200, str(count).encode(), {"X-Asp-State": new_state})

    def tool_push_tool(self, request, args):
        name = (args or {}).get("name", "late_tool")
        self.answer(200, b"scheduled")
        threading.Thread(target=push_tool_later, args=(request["connection_id"], name), daemon=True).start()

    def tool_frames(self, request, args):
        rid = request["request_id"]
        started = time.process_time()
        self.start_chunked({"Content-Type": FRAMES})
        self.chunk(frame(STREAM, rid, {"progress": 1.0, "total": 2.0, "message": "thinking"}, PROGRESS_FLAG))
        self.chunk(frame(STREAM, rid, b"partial answer"))
        cpu_us = int((time.process_time() - started) * 1e6)
        result = {"answer": 42, "tool": request["tool"]}
        self.chunk(frame(COMPLETE, rid, {"result": result, "metrics": {"wall_us": 0, "cpu_us": cpu_us}}))
        self.end_chunked()

    def tool_slow(self, request, args):
        self.start_chunked()
        for i in range(200):
            self.chunk(b"tick %d\n" % i)
            time.sleep(0.05)
        self.end_chunked()
        OBSERVED.add("completed", request["request_id"])

    def tool_fail(self, request, args):
        self.answer(500, b"the model is down")

    def tool_truncate(self, request, args):
        self.send_response(200)
        self.send_header("Content-Length", "1000")
        self.end_headers()
        self.wfile.write(b"only 10 b.")
        self.wfile.flush()
        self.close_connection = True

    def tool_hang(self, request, args):
        time.sleep((args or {}).get("seconds", 30))
        self.answer(200, b"too late")

    def tool_trickle(self, request, args):
        self.start_chunked()
        for _ in range(300):
            self.chunk(b".")
            time.sleep(0.2)
        self.end_chunked()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--management-url")
    parser.add_argument("--management-secret")
    args = parser.parse_args()
    MANAGEMENT["url"] = args.management_url
    MANAGEMENT["secret"] = args.management_secret
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    print(f"listening http://127.0.0.1:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.exit(main())
