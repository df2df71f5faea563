"""The same Agent on a WebSocket route of an existing ASGI app (Starlette
under uvicorn), beside its plain HTTP routes: called by the Python client
and by the `asp` CLI, and refusing an upgrade without asp-v1."""

import asyncio
import socket
import urllib.request

import uvicorn
import websockets
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route, WebSocketRoute

import agent_socket
from conftest import ASP


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_agent_on_a_starlette_route_under_uvicorn():
    agent = agent_socket.Agent("asgi-agent", tokens=["t0k"])

    @agent.tool()
    async def shout(args):
        for word in args["text"].split():
            yield word.upper() + " "

    async def health(request):
        return PlainTextResponse("ok")

    app = Starlette(routes=[Route("/health", health), WebSocketRoute("/v1/agent-socket", agent.asgi())])

    async def main():
        port = free_port()
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
        serving = asyncio.ensure_future(server.serve())
        while not server.started:
            await asyncio.sleep(0.02)
        url = f"ws://127.0.0.1:{port}/v1/agent-socket"
        try:
            # The application's own routes still answer.
            body = await asyncio.to_thread(lambda: urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5).read())
            assert body == b"ok"

            client = await agent_socket.connect(url, token="t0k")
            assert [t["name"] for t in client.tools] == ["shout"]
            assert await client.invoke("shout", {"text": "agents stream tokens"}).text() == "AGENTS STREAM TOKENS "
            await client.close()

            process = await asyncio.create_subprocess_exec(
                ASP, "invoke", url, "--plaintext", "--token", "t0k", "shout", '{"text": "from rust"}',
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            )
            out, err = await process.communicate()
            assert process.returncode == 0, err.decode()
            assert out.decode().startswith("FROM RUST ")

            try:
                await websockets.connect(url)  # no asp-v1 offered
                raise AssertionError("the upgrade was accepted")
            except websockets.exceptions.InvalidStatus as refused:
                # uvicorn lets the app answer the upgrade: SPEC §2's 400.
                assert refused.response.status_code == 400, refused.response.status_code
                assert b"asp-v1" in refused.response.body
        finally:
            server.should_exit = True
            await serving

    asyncio.run(asyncio.wait_for(main(), 30))
