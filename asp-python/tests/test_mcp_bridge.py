"""`asp mcp serve` in front of the official MCP Python SDK's server (MCPServer,
FastMCP's name in mcp 2), over stdio and Streamable HTTP, called by the Rust
ASP client (the `asp` CLI): tools and schemas, results, progress, a
deadline reaching the Python tool as a cancellation, tools/list_changed, and
the MCP server crashing mid-call."""

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from conftest import ASP, free_port

SERVER = str(Path(__file__).parent / "support" / "fastmcp_server.py")


def asp(*args, timeout=20):
    return subprocess.run([ASP, *args], capture_output=True, text=True, timeout=timeout)


def eventually(what, check, seconds=15):
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


class Bridge:
    """`asp mcp serve` with the Python MCP server behind it."""

    def __init__(self, *target):
        self.process = subprocess.Popen(
            [ASP, "mcp", "serve", "--plaintext", "--bind", "127.0.0.1:0", "--drain-ms", "200", *target],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )
        line = self.process.stdout.readline()
        assert line.startswith("serving "), f"asp mcp serve said {line!r} (exit {self.process.poll()})"
        self.url = line.split()[1]

    def invoke(self, tool, args=None, *extra):
        return asp("invoke", self.url, "--plaintext", "--json", tool, json.dumps(args or {}), *extra)

    def tools(self):
        out = asp("tools", self.url, "--plaintext", "--json")
        assert out.returncode == 0, out.stderr
        return {t["name"]: t for t in json.loads(out.stdout)}

    def stop(self):
        self.process.kill()
        self.process.wait()


def result_of(out):
    """The `--json` result line of `asp invoke`."""
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])["result"]


def check_bridge(bridge, marker):
    tools = bridge.tools()
    assert {"echo", "tokens", "slow", "grow", "crash"} <= set(tools)
    assert tools["echo"]["desc"] == "Returns its text."
    assert tools["echo"]["input"]["required"] == ["text"]

    out = bridge.invoke("echo", {"text": "from rust"})
    assert out.stdout.startswith("from rust")  # the text content, streamed
    assert result_of(out) == {"result": "from rust"}  # FastMCP's structured content

    out = bridge.invoke("tokens", {"n": 4})
    assert result_of(out) == {"result": "4 tokens"}
    assert "progress " in out.stderr and "/4" in out.stderr, out.stderr

    # An ASP deadline cancels the Python tool (notifications/cancelled).
    out = bridge.invoke("slow", {"seconds": 30}, "--deadline", "400")
    assert out.returncode == 8, out.stderr  # DEADLINE_EXCEEDED
    eventually("the Python tool to see the cancellation", lambda: Path(marker).exists() and "cancelled" in Path(marker).read_text())

    # FastMCP answers bad arguments with isError: TOOL_FAILED, its message kept.
    out = bridge.invoke("echo", {"no": "text"})
    assert out.returncode == 7 and "TOOL_FAILED" in out.stderr and "Field required" in out.stderr, out.stderr

    # tools/list_changed → the bridge's tool set (new connections see it).
    assert result_of(bridge.invoke("grow", {"name": "fresh"})) == {"result": "fresh"}
    eventually("`fresh` to be served", lambda: "fresh" in bridge.tools())
    assert bridge.invoke("fresh").stdout.startswith("I am fresh")


def test_the_python_mcp_sdk_over_stdio_behind_asp_mcp_serve():
    marker = os.path.join(tempfile.mkdtemp(prefix="asp-mcp-"), "marker")
    bridge = Bridge("--", sys.executable, SERVER, "stdio", marker)
    try:
        check_bridge(bridge, marker)
        # The MCP server crashes mid-call: a clear error, then a restart.
        out = bridge.invoke("crash")
        assert out.returncode == 7 and "BACKEND_UNAVAILABLE" in out.stderr, out.stderr
        eventually("the restarted server", lambda: bridge.invoke("echo", {"text": "again"}).returncode == 0)
    finally:
        bridge.stop()


def test_the_python_mcp_sdk_over_streamable_http_behind_asp_mcp_serve():
    marker = os.path.join(tempfile.mkdtemp(prefix="asp-mcp-"), "marker")
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, SERVER, "http", str(port), marker], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        def listening():
            with socket.socket() as s:
                return s.connect_ex(("127.0.0.1", port)) == 0

        eventually("the MCP server to listen", listening)
        bridge = Bridge("--url", f"http://127.0.0.1:{port}/mcp")
        try:
            check_bridge(bridge, marker)
        finally:
            bridge.stop()
    finally:
        server.kill()
        server.wait()


def test_asp_mcp_serve_refuses_a_server_that_does_not_start():
    out = asp("mcp", "serve", "--plaintext", "--bind", "127.0.0.1:0", "--", "/nonexistent/mcp-server")
    assert out.returncode == 1
    assert "cannot connect to the MCP server `/nonexistent/mcp-server`" in out.stderr, out.stderr
    out = asp("mcp", "serve", "--plaintext", "--bind", "127.0.0.1:0")
    assert out.returncode == 2 and "--url" in out.stderr  # clap: one of the two is required

