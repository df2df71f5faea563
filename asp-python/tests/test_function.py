"""A relay function written with agent_socket.Function, under uvicorn,
behind the real asp-relay (a process), called by the Python client; its
management API reached with agent_socket.Management. Both request body
encodings the relay has (JSON and --msgpack)."""

import asyncio
import json
import os
import tempfile
import urllib.error
import urllib.request
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import uvicorn

import agent_socket
from agent_socket import AspError, Function, Management, ManagementError
from conftest import free_port

RELAY = os.environ.get("ASP_RELAY_BIN", str(Path(__file__).resolve().parents[2] / "target" / "debug" / "asp-relay"))
SECRET = "management-s3cret"
CREDENTIAL = "function-cr3dential"


def make_function(seen):
    fn = Function(credential=CREDENTIAL)

    @fn.on_connect
    async def connected(connection):
        seen["connects"].append(connection.client.get("name"))
        connection.state = 100

    @fn.on_disconnect
    async def disconnected(connection):
        seen["disconnects"].append(connection.connection_id)

    @fn.tool(desc="Its arguments back, and what the relay told the function")
    async def echo(args, call):
        return {"args": args, "meta": call.meta, "tool": call.tool, "timeout_ms": call.timeout_ms}

    @fn.tool(input={"type": "object", "properties": {"text": {"type": "string"}}})
    async def words(args, call):
        """One chunk per word, with progress."""
        parts = args["text"].split()
        for i, word in enumerate(parts):
            call.progress(i + 1, len(parts), word)
            yield word + " "

    @fn.tool()
    async def count(args, call):
        """A counter in the connection's state (on_connect starts it at 100)."""
        call.state = call.state + 1
        return call.state

    @fn.tool()
    async def refuse(args):
        raise AspError(301, "INVALID_ARGUMENTS", "n must be positive")

    @fn.tool()
    async def boom(args):
        raise ValueError("the function broke")

    @fn.tool()
    async def late_state(args, call):
        await call.send("output first")
        call.state = "too late"

    @fn.tool()
    async def grow(args, call):
        call.push_tools("add", [{"name": "grown", "desc": "pushed by a call"}])
        return "grown"

    @fn.tool()
    async def slow(args, call):
        try:
            for i in range(1000):
                await call.send(f"tick {i}\n")
                await asyncio.sleep(0.02)
        except asyncio.CancelledError:
            seen["cancelled"].append(call.request_id)
            raise

    @fn.tool()
    async def big(args, call):
        """Output larger than the window, so that send() waits for the relay."""
        for _ in range(args["n"]):
            await call.send(b"x" * 50_000)

    return fn


@asynccontextmanager
async def relay_for(fn, *extra):
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(fn, host="127.0.0.1", port=port, log_level="warning"))
    serving = asyncio.ensure_future(server.serve())
    while not server.started:
        await asyncio.sleep(0.02)
    tools = os.path.join(tempfile.mkdtemp(prefix="asp-fn-"), "tools.json")
    Path(tools).write_text(fn.tools_json())
    management = f"127.0.0.1:{free_port()}"
    relay = await asyncio.create_subprocess_exec(
        RELAY, "--function", f"http://127.0.0.1:{port}", "--listen", "127.0.0.1:0", "--plaintext",
        "--management-listen", management, "--management-secret", SECRET, "--function-token", CREDENTIAL,
        "--tools", tools, "--lifecycle-calls", *extra,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        lines = {}
        while "function" not in lines:
            line = (await asyncio.wait_for(relay.stdout.readline(), 30)).decode()
            assert line, f"{RELAY} exited with {await relay.wait()}"
            key, _, value = line.strip().partition(" ")
            lines[key] = value
        yield lines["relay"], f"http://{management}", f"http://127.0.0.1:{port}"
    finally:
        relay.kill()
        await relay.wait()
        server.should_exit = True
        await serving


@pytest.mark.parametrize("encoding", ["json", "msgpack"])
def test_a_python_function_behind_asp_relay(encoding):
    seen = {"connects": [], "disconnects": [], "cancelled": []}
    fn = make_function(seen)

    async def main():
        async with relay_for(fn, *(["--msgpack"] if encoding == "msgpack" else [])) as (url, management_url, _):
            client = await agent_socket.connect(url, name="py-client")
            cid = client.connection_id
            assert {t["name"] for t in client.tools} == {t["name"] for t in fn.tools}

            # Values cross JSON or MsgPack bodies unchanged, bytes and big ints too.
            args = {"b": b"\x00\xffbin", "n": 2**60, "f": 1.5, "list": [1, None, "x"]}
            done = await client.invoke("echo", args, meta={"k": "v"}, timeout_ms=5000).result()
            assert done.result == {"args": args, "meta": {"k": "v"}, "tool": "echo", "timeout_ms": 5000}

            # A generator streams; progress arrives as progress.
            call = client.invoke("words", {"text": "agents stream from python"})
            assert await call.text() == "agents stream from python "
            assert [(p.progress, p.total, p.message) for p in call.progress][-1] == (4, 4, "python")

            # The state is a Python value the relay keeps between calls;
            # on_connect set its start.
            assert [(await client.invoke("count").result()).result for _ in range(3)] == [101, 102, 103]
            assert seen["connects"] == ["py-client"]

            # Failures carry their codes.
            with pytest.raises(AspError) as refused:
                await client.invoke("refuse", {}).result()
            assert (refused.value.code, refused.value.message) == (301, "n must be positive")
            with pytest.raises(AspError) as broke:
                await client.invoke("boom").result()
            assert broke.value.code == 304 and "ValueError: the function broke" in broke.value.message
            with pytest.raises(AspError) as unknown:
                await client.invoke("no-such-tool").result()
            assert unknown.value.code == 300  # the function's 404
            late = client.invoke("late_state")
            with pytest.raises(AspError) as too_late:
                await late.text()
            assert too_late.value.code == 304 and "X-Asp-State" in too_late.value.message
            assert (await client.invoke("count").result()).result == 104  # the state survived

            # A TOOL_DEF written in a call's body reaches the client.
            changed = asyncio.Event()
            client.on_tools_changed = changed.set
            assert (await client.invoke("grow").result()).result == "grown"
            await asyncio.wait_for(changed.wait(), 5)
            assert "grown" in {t["name"] for t in client.tools}

            # Output larger than the function's window goes through whole.
            assert len(b"".join([c async for c in client.invoke("big", {"n": 10})])) == 500_000

            # Cancelling the reading task: INTERRUPT → the relay aborts the
            # request → CancelledError in the handler.
            ticking = client.invoke("slow")

            async def read_forever():
                async for _ in ticking:
                    pass

            reader = asyncio.ensure_future(read_forever())
            await asyncio.sleep(0.3)
            reader.cancel()
            with pytest.raises(asyncio.CancelledError):
                await reader
            for _ in range(250):
                if seen["cancelled"]:
                    break
                await asyncio.sleep(0.02)
            assert seen["cancelled"] == [ticking.id]

            # The management API: look, push, broadcast, refuse bad requests.
            relay = Management(management_url, SECRET)
            info = await relay.connection(cid)
            assert info["state"] == "open" and "grown" in info["tools"] and info["client"]["name"] == "py-client"
            changed.clear()
            await relay.push_tools(cid, "add", [{"name": "managed", "desc": "pushed after the calls"}])
            await asyncio.wait_for(changed.wait(), 5)
            assert "managed" in {t["name"] for t in client.tools}
            changed.clear()
            reached = await relay.broadcast_tools("remove", [{"name": "managed"}])
            assert reached["connections"] == 1
            await asyncio.wait_for(changed.wait(), 5)
            assert "managed" not in {t["name"] for t in client.tools}
            with pytest.raises(ManagementError) as unknown_cid:
                await relay.connection("c-no-such-connection")
            assert unknown_cid.value.status == 404
            with pytest.raises(ManagementError) as wrong_secret:
                await Management(management_url, "wrong").connection(cid)
            assert wrong_secret.value.status == 401

            # GOAWAY through the management API: the client drains.
            states = []
            client.on_state = lambda state, detail: states.append(state)
            await relay.goaway(cid, "moving you")
            for _ in range(250):
                if "draining" in states:
                    break
                await asyncio.sleep(0.02)
            assert "draining" in states
            await client.close()
            for _ in range(250):
                if seen["disconnects"]:
                    break
                await asyncio.sleep(0.02)
            assert seen["disconnects"] == [cid]

    asyncio.run(asyncio.wait_for(main(), 60))


def test_the_function_refuses_requests_without_its_credential():
    fn = make_function({"connects": [], "disconnects": [], "cancelled": []})

    async def main():
        async with relay_for(fn) as (_, _management, function_url):
            def post(path, headers):
                request = urllib.request.Request(function_url + path, data=b"{}", method="POST", headers=headers)
                try:
                    with urllib.request.urlopen(request, timeout=5) as response:
                        return response.status, response.read()
                except urllib.error.HTTPError as error:
                    return error.code, error.read()

            status, body = await asyncio.to_thread(post, "/invoke", {})
            assert status == 401 and b"function credential" in body
            status, body = await asyncio.to_thread(post, "/invoke", {"Authorization": "Bearer wrong"})
            assert status == 401
            status, body = await asyncio.to_thread(post, "/elsewhere", {"Authorization": f"Bearer {CREDENTIAL}"})
            assert status == 404 and json.loads(body)["error"].startswith("no route")
            status, body = await asyncio.to_thread(
                post, "/invoke", {"Authorization": f"Bearer {CREDENTIAL}", "Content-Type": "application/json"}
            )
            assert status == 400 and b"connection_id, request_id, tool" in body, body  # {} is not a call

    asyncio.run(asyncio.wait_for(main(), 60))
