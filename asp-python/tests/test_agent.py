"""agent_socket.Agent (server-role sessions of the Rust core) called by the
Rust client (the `asp` CLI, a real process) and by the Python client:
typed results, streaming generators, progress, an interrupt reaching the
handler as CancelledError, tools added and removed live, token checks,
and a WebSocket without asp-v1 refused."""

import asyncio
import json
import os
import ssl
import subprocess
import tempfile

import pytest
import websockets

import agent_socket
from conftest import ASP


def run(coroutine):
    return asyncio.run(asyncio.wait_for(coroutine, 30))


def make_agent(**kwargs):
    agent = agent_socket.Agent("py-agent", **kwargs)
    state = {"cancelled": asyncio.Event(), "started": asyncio.Event()}

    @agent.tool(desc="Returns its arguments", input={"type": "object"})
    async def echo(args):
        return args

    @agent.tool()
    async def count(args, call):
        """Streams 0 … n-1 with progress."""
        for i in range(args["n"]):
            call.progress(i + 1, args["n"])
            await call.send(f"{i} ")
        return args["n"]

    @agent.tool()
    async def words(args):
        for word in args["text"].split():
            yield word + "\n"

    @agent.tool()
    async def stall(args, call):
        state["started"].set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            state["cancelled"].set()
            raise

    @agent.tool()
    async def broken(args):
        raise ValueError("no good")

    return agent, state


def certificate():
    """A self-signed server certificate for 127.0.0.1, made now (openssl)."""
    directory = tempfile.mkdtemp(prefix="asp-agent-")
    cert, key = os.path.join(directory, "cert.pem"), os.path.join(directory, "key.pem")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-addext", "basicConstraints=critical,CA:FALSE"],
        check=True, capture_output=True,
    )
    return cert, key


CERT, KEY = certificate()


async def start(agent):
    """The agent over wss:// (the asp CLI trusts CERT with --ca)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(CERT, KEY)
    server = await agent.serve("127.0.0.1", 0, ssl=context)
    port = server.sockets[0].getsockname()[1]
    return server, f"wss://127.0.0.1:{port}/v1/agent-socket"


def client_tls():
    return ssl.create_default_context(cafile=CERT)


async def asp(command, url, *args, stdin=None):
    process = await asyncio.create_subprocess_exec(
        ASP, command, url, "--ca", CERT, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, stdin=asyncio.subprocess.PIPE
    )
    out, err = await process.communicate(stdin)
    return process.returncode, out.decode(), err.decode()


def test_the_rust_client_calls_python_tools():
    async def main():
        agent, state = make_agent()
        server, url = await start(agent)
        code, out, err = await asp("tools", url, "--json")
        assert code == 0, err
        listed = {t["name"]: t for t in json.loads(out)}
        assert set(listed) == {"echo", "count", "words", "stall", "broken"}
        assert listed["count"]["desc"] == "Streams 0 … n-1 with progress."

        code, out, err = await asp("invoke", url, "echo", '{"q": "hi", "n": [1, 2.5]}', "--json")
        assert code == 0, err
        assert json.loads(out.strip().splitlines()[-1])["result"] == {"q": "hi", "n": [1, 2.5]}

        code, out, err = await asp("invoke", url, "count", '{"n": 5}', "--json")
        assert code == 0, err
        assert out.startswith("0 1 2 3 4 ") and json.loads(out.splitlines()[-1])["result"] == 5

        code, out, err = await asp("invoke", url, "words", '{"text": "agents stream tokens"}')
        assert code == 0 and out.startswith("agents\nstream\ntokens\n"), (code, out, err)

        code, out, err = await asp("invoke", url, "broken")
        assert code == 7 and "TOOL_FAILED" in err and "no good" in err, (code, err)
        code, out, err = await asp("invoke", url, "nothing")
        assert code == 6 and "UNKNOWN_TOOL" in err, (code, err)

        # The tool's deadline passes: the handler sees CancelledError.
        code, out, err = await asp("invoke", url, "stall", "--deadline", "300")
        assert code == 8, (code, err)
        await asyncio.wait_for(state["cancelled"].wait(), 5)
        server.close()
        await server.wait_closed()

    run(main())


def test_tokens_are_checked():
    async def main():
        agent, _ = make_agent(tokens=["s3cret"])
        server, url = await start(agent)
        code, out, err = await asp("invoke", url, "echo", "{}")
        assert code == 5 and "UNAUTHENTICATED" in err, (code, err)
        code, out, err = await asp("invoke", url, "echo", '{"a": 1}', "--token", "s3cret", "--json")
        assert code == 0, err
        server.close()
        await server.wait_closed()

    run(main())


def test_python_client_and_agent_tools_added_and_removed_live():
    async def main():
        agent, state = make_agent()
        server, url = await start(agent)
        client = await agent_socket.connect(url, ssl=client_tls())
        changes = asyncio.Queue()
        client.on_tools_changed = lambda: changes.put_nowait([t["name"] for t in client.tools])

        async def late(args):
            return "late"

        agent.add_tool(late, desc="added while connected")
        assert "late" in await asyncio.wait_for(changes.get(), 5)
        assert (await client.invoke("late").result()).result == "late"
        agent.remove_tool("late")
        assert "late" not in await asyncio.wait_for(changes.get(), 5)
        with pytest.raises(agent_socket.AspError) as caught:
            await client.invoke("late").result()
        assert caught.value.name == "UNKNOWN_TOOL"

        # Cancelling the Python caller interrupts the Python handler.
        call = client.invoke("stall")
        reader = asyncio.ensure_future(call.result())
        await asyncio.wait_for(state["started"].wait(), 5)
        reader.cancel()
        await asyncio.wait_for(state["cancelled"].wait(), 5)
        await client.close()
        server.close()
        await server.wait_closed()

    run(main())


def test_a_websocket_without_asp_v1_or_on_another_path_is_refused():
    async def main():
        agent, _ = make_agent()
        server, url = await start(agent)
        with pytest.raises(websockets.exceptions.InvalidStatus) as refused:
            await websockets.connect(url, ssl=client_tls())  # no subprotocol offered
        assert refused.value.response.status_code == 400  # SPEC §2
        assert b"asp-v1" in refused.value.response.body
        with pytest.raises(websockets.exceptions.InvalidStatus) as refused:
            await websockets.connect(url.replace("/v1/agent-socket", "/other"), subprotocols=["asp-v1"], ssl=client_tls())
        assert refused.value.response.status_code == 404
        server.close()
        await server.wait_closed()

    run(main())
