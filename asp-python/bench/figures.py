"""Figures for the Python client (issue 18), one run, not a test:

    target/py-venv/bin/pip install -r asp-python/requirements-bench.txt   # the venv test.sh makes
    ASP_BIN=target/release/asp target/py-venv/bin/python asp-python/bench/figures.py

agent_socket (the Rust core through PyO3) against the Rust `asp serve`, and
the official MCP Python SDK's client against its server over Streamable
HTTP, each doing an echo call (p50 over sequential calls after a warm-up)
and streaming (ASP STREAM frames/s, counted by the server's `tokens`; MCP progress
notifications/s).
"""

import asyncio
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import agent_socket

HERE = Path(__file__).resolve().parent
ASP = os.environ.get("ASP_BIN", str(HERE.parents[1] / "target" / "release" / "asp"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def asp_figures(url: str, calls: int, tokens: int):
    client = await agent_socket.connect(url)
    rtts = []
    for i in range(calls + calls // 10):
        t0 = time.perf_counter()
        await client.invoke("echo", {"q": "hi"}).result()
        if i >= calls // 10:
            rtts.append(time.perf_counter() - t0)
    best = float("inf")
    for run in range(4):  # the best of three after an untimed run
        t0 = time.perf_counter()
        call = client.invoke("tokens", {"n": tokens, "delay_ms": 0})
        chunks = 0
        async for _ in call:
            chunks += 1
        await call.result()
        if run:
            best = min(best, time.perf_counter() - t0)
    await client.close()
    return statistics.median(rtts) * 1e6, tokens / best


async def mcp_figures(url: str, calls: int, notifications: int):
    from mcp.client.client import Client

    async with Client(url) as client:
        rtts = []
        for i in range(calls + calls // 10):
            t0 = time.perf_counter()
            await client.call_tool("echo", {"q": "hi"})
            if i >= calls // 10:
                rtts.append(time.perf_counter() - t0)
        seen = 0

        async def progress(value, total, message):
            nonlocal seen
            seen += 1

        t0 = time.perf_counter()
        await client.call_tool("tokens", {"n": notifications}, progress_callback=progress)
        seconds = time.perf_counter() - t0
    return statistics.median(rtts) * 1e6, seen / seconds, seen


async def main(calls: int, tokens: int, notifications: int) -> None:
    asp = subprocess.Popen([ASP, "serve", "--bind", "127.0.0.1:0", "--plaintext"], stdout=subprocess.PIPE, text=True)
    port = free_port()
    mcp = subprocess.Popen([sys.executable, str(HERE / "mcp_server.py"), str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = asp.stdout.readline().split()[1]
        asp_p50, asp_rate = await asp_figures(url, calls, tokens)
        for _ in range(100):  # the MCP server needs a moment to start
            try:
                socket.create_connection(("127.0.0.1", port), 0.1).close()
                break
            except OSError:
                await asyncio.sleep(0.1)
        mcp_p50, mcp_rate, seen = await mcp_figures(f"http://127.0.0.1:{port}/mcp", calls // 4, notifications)
    finally:
        asp.kill()
        mcp.kill()
    print("| | echo p50 | streaming |")
    print("|---|---:|---:|")
    print(f"| agent_socket → asp serve | {asp_p50:.0f} µs | {asp_rate:,.0f} STREAM frames/s |")
    print(f"| MCP SDK client → MCP SDK server (Streamable HTTP) | {mcp_p50:.0f} µs | {mcp_rate:,.0f} progress/s ({seen} seen) |")
    print(f"| ASP / MCP | {asp_p50 / mcp_p50:.2f}x latency | {asp_rate / mcp_rate:.1f}x rate |")


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:]]
    asyncio.run(main(*(args + [2000, 50000, 2000][len(args) :])))
