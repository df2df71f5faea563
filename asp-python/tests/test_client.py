"""agent_socket's asyncio client on the Rust core against the real
`asp serve` on loopback: streaming, errors with wire codes, interrupt by
cancelling, wss:// with a certificate made now, resume after the socket is
cut, and a WebSocket server without asp-v1."""

import asyncio
import ssl
import time

import pytest
import websockets

import agent_socket
from agent_socket import AspError, ConnectError


def run(coroutine):
    return asyncio.run(asyncio.wait_for(coroutine, 30))


def test_streams_tokens_with_progress_then_the_result(server):
    async def main():
        client = await agent_socket.connect(server.url, name="pytest")
        assert client.connection_id.startswith("c-")
        assert any(t["name"] == "tokens" and t["input"]["properties"]["n"]["type"] == "integer" for t in client.tools)
        call = client.invoke("tokens", {"n": 12, "delay_ms": 0})
        text = await call.text()
        done = await call.result()
        assert len(text.split()) == 12
        assert done.result == 12 and done.wall_us > 0
        assert call.progress and call.progress[-1].progress == 12
        await client.close()
        assert (await client.closed()).code == 0

    run(main())


def test_values_cross_both_ways_and_errors_carry_the_wire_code(server):
    async def main():
        client = await agent_socket.connect(server.url)
        args = {"q": "hi", "n": [1, 2.5, None, True], "bin": b"\x01\x02", "big": 2**60, "neg": -(2**60)}
        assert (await client.invoke("echo", args).result()).result == args
        with pytest.raises(AspError) as caught:
            await client.invoke("no_such_tool").result()
        assert (caught.value.code, caught.value.name) == (300, "UNKNOWN_TOOL")
        await client.close()

    run(main())


def test_cancelling_the_reader_interrupts_the_handler_on_the_server(server):
    async def main():
        client = await agent_socket.connect(server.url)
        call = client.invoke("sleep", {"ms": 10000})
        reader = asyncio.ensure_future(call.result())
        await asyncio.sleep(0.1)
        reader.cancel()
        with pytest.raises(asyncio.CancelledError):
            await reader
        await client.close()

    run(main())
    # The server's handler saw it: its metrics count an interrupted `sleep`.
    wanted = 'asp_invocations_total{tool="sleep",outcome="interrupted"} 1'
    for _ in range(50):
        text = server.metrics_text()
        if wanted in text:
            return
        time.sleep(0.1)
    raise AssertionError(f"{wanted} missing from:\n{text}")


def test_over_wss_with_the_servers_certificate_made_now(tls_server):
    async def main():
        trusting = ssl.create_default_context(cafile=tls_server.ca)
        client = await agent_socket.connect(tls_server.url, ssl=trusting)
        assert (await client.invoke("tokens", {"n": 5, "delay_ms": 0}).result()).result == 5
        await client.close()
        with pytest.raises(ConnectError) as caught:
            await agent_socket.connect(tls_server.url)  # the system's CAs do not know it
        assert caught.value.kind == "websocket" and "certificate" in str(caught.value).lower()

    run(main())


async def cuttable_proxy(url):
    """A TCP proxy to `url`'s port; returns (url through it, cut)."""
    host_port = url.split("//")[1].split("/")[0]
    port = int(host_port.rsplit(":", 1)[1])
    writers = []

    async def pipe(reader, writer):
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    async def handle(reader, writer):
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", port)
        writers.extend([writer, up_writer])
        asyncio.ensure_future(pipe(reader, up_writer))
        asyncio.ensure_future(pipe(up_reader, writer))

    proxy = await asyncio.start_server(handle, "127.0.0.1", 0)
    proxy_port = proxy.sockets[0].getsockname()[1]

    def cut():
        for w in writers:
            w.transport.abort()
        writers.clear()

    return url.replace(host_port, f"127.0.0.1:{proxy_port}"), cut, proxy


def test_a_cut_socket_is_reconnected_and_the_session_resumed_output_whole(server):
    async def main():
        url, cut, proxy = await cuttable_proxy(server.url)
        client = await agent_socket.connect(url)
        cid = client.connection_id
        states = []
        client.on_state = lambda state, detail: states.append(state)
        call = client.invoke("tokens", {"n": 40, "delay_ms": 20})
        text = b""
        async for chunk in call:
            if not text:
                cut()
            text += chunk
        assert (await call.result()).result == 40
        assert len(text.split()) == 40, text
        assert states[0] == "reconnecting" and "resumed" in states, states
        assert client.connection_id == cid
        await client.close()
        proxy.close()

    run(main())


def test_a_websocket_server_without_asp_v1_is_a_clear_error():
    async def main():
        async def handler(ws):
            await ws.wait_closed()

        async with websockets.serve(handler, "127.0.0.1", 0) as plain:
            port = plain.sockets[0].getsockname()[1]
            with pytest.raises(ConnectError) as caught:
                await agent_socket.connect(f"ws://127.0.0.1:{port}/v1/agent-socket")
            assert caught.value.kind == "subprotocol" and "asp-v1" in str(caught.value)

    run(main())


def test_the_server_calls_a_client_tool_and_interrupts_another(server):
    async def main():
        started = asyncio.Event()
        cancelled = asyncio.Event()

        async def whoami(args, call):
            call.progress(1, 2, "half")
            await call.send("hello ")
            await call.send(b"from python")
            return {"me": "python", "got": args}

        async def forever(args, call):
            started.set()
            try:
                await asyncio.sleep(60)
            except asyncio.CancelledError:
                cancelled.set()
                raise

        tools = [
            agent_socket.Tool({"name": "whoami", "desc": "says who"}, whoami),
            agent_socket.Tool({"name": "forever"}, forever),
        ]
        client = await agent_socket.connect(server.url, tools=tools)
        asked = await client.invoke("ask_client", {"tool": "whoami", "args": {"n": 1}}).result()
        assert asked.result == {"output": "hello from python", "result": {"me": "python", "got": {"n": 1}}}
        # The server's call on `forever` is interrupted when ours is.
        outer = client.invoke("ask_client", {"tool": "forever"})
        reader = asyncio.ensure_future(outer.result())
        await asyncio.wait_for(started.wait(), 5)
        reader.cancel()
        await asyncio.wait_for(cancelled.wait(), 5)
        # A tool pushed by the server shows up.
        changed = asyncio.Event()
        client.on_tools_changed = changed.set
        await client.invoke("announce", {"name": "pushed_to_python"}).result()
        await asyncio.wait_for(changed.wait(), 5)
        assert any(t["name"] == "pushed_to_python" for t in client.tools)
        await client.close()

    run(main())
