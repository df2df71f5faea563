"""Agents: tools served to ASP/1 clients, each connection a server-role
``Session`` of the Rust core driven from asyncio over ``websockets``.

::

    agent = agent_socket.Agent("weather", tokens=["s3cret"])

    @agent.tool(desc="Says hello", input={"type": "object", "properties": {"who": {"type": "string"}}})
    async def hello(args, call):
        call.progress(1, 2, "thinking")
        return f"hello {args['who']}"

    @agent.tool()
    async def count(args):            # an async generator streams its items
        for i in range(args["n"]):
            yield f"{i} "

    server = await agent.serve("127.0.0.1", 9443, ssl=context)
"""

from __future__ import annotations

import asyncio
from collections import deque
import ssl as ssl_module
from typing import Any, Callable, Deque, Dict, Iterable, List, Optional, Set

from websockets.asyncio.connection import Connection
from websockets.asyncio.server import Server, serve
from websockets.exceptions import ConnectionClosed

from ._core import Session
from ._endpoint import Endpoint, Tool, ToolCall, tool_spec

_UNAUTHENTICATED = 400
_ROUTE = "/v1/agent-socket"


class Agent:
    """A set of tools served to every client that connects. Tools added or
    removed while clients are connected reach them as TOOL_DEF pushes."""

    def __init__(self, name: Optional[str] = None, *, tokens: Optional[Iterable[str]] = None, heartbeat_ms: Optional[int] = None) -> None:
        self.name = name
        self._tokens = set(tokens) if tokens is not None else None
        self._heartbeat_ms = heartbeat_ms
        self._tools: Dict[str, Tool] = {}
        self._connections: Set[AgentConnection] = set()

    def tool(self, name: Optional[str] = None, *, desc: Optional[str] = None, input: Optional[Dict[str, Any]] = None) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Decorates ``async def f(args, call)`` (or ``f(args)``, or an async
        generator) as a tool named ``name`` (default: the function's)."""

        def register(handler: Callable[..., Any]) -> Callable[..., Any]:
            self.add_tool(handler, name=name, desc=desc, input=input)
            return handler

        return register

    def add_tool(self, handler: Callable[..., Any], *, name: Optional[str] = None, desc: Optional[str] = None, input: Optional[Dict[str, Any]] = None) -> Tool:
        """Adds (or replaces) a tool, and pushes it to connected clients
        (``desc`` defaults to the handler's docstring)."""
        spec = tool_spec(handler, name, desc, input)
        tool = Tool(spec, handler)
        self._tools[spec["name"]] = tool
        for connection in list(self._connections):
            connection._push("add", [tool])
        return tool

    def remove_tool(self, name: str) -> None:
        """Removes a tool, and tells connected clients."""
        tool = self._tools.pop(name, None)
        if tool is not None:
            for connection in list(self._connections):
                connection._push("remove", [tool])

    @property
    def tools(self) -> List[Tool]:
        """The tools offered now."""
        return list(self._tools.values())

    async def serve(self, host: str, port: int, *, ssl: Optional[ssl_module.SSLContext] = None) -> Server:
        """Serves the agent on ``ws://`` (or ``wss://`` with ``ssl``)
        ``host:port/v1/agent-socket``; returns the ``websockets`` server
        (``server.close()`` stops it)."""
        return await serve(
            self.handle,
            host,
            port,
            ssl=ssl,
            subprotocols=["asp-v1"],  # type: ignore[list-item]
            process_request=_only_the_route,
            # PING and size limits are the session's (SPEC §8, §12), not the
            # WebSocket library's; no compression (SPEC §2).
            max_size=None,
            compression=None,
            ping_interval=None,
        )

    async def handle(self, ws: Connection) -> None:
        """Runs one accepted WebSocket (``websockets``) as an ASP/1 session
        until it ends."""
        if ws.subprotocol != "asp-v1":
            await ws.close(1002, "the asp-v1 subprotocol is required")
            return
        await self._run(ws, ws.request.headers.get("Authorization", "") if ws.request else "")

    def asgi(self) -> "AsgiApp":
        """The agent as an ASGI application for a WebSocket route of any ASGI
        server or framework: ``WebSocketRoute("/v1/agent-socket",
        agent.asgi())`` in Starlette, ``app.mount(…)`` in FastAPI."""
        return AsgiApp(self)

    async def _run(self, ws: Any, authorization: str) -> None:
        connection = AgentConnection(self, ws, authorization)
        self._connections.add(connection)
        try:
            await connection.run()
        finally:
            self._connections.discard(connection)


class AsgiApp:
    """:meth:`Agent.asgi`: an ASGI app (an object, so that Starlette mounts it
    as an app rather than calling it as an endpoint function)."""

    def __init__(self, agent: Agent) -> None:
        self.agent = agent

    async def __call__(self, scope: Dict[str, Any], receive: Callable[[], Any], send: Callable[[Dict[str, Any]], Any]) -> None:
        if scope["type"] != "websocket":
            body = "ASP/1 is a WebSocket protocol: upgrade with Sec-WebSocket-Protocol: asp-v1\n".encode()
            await send({"type": "http.response.start", "status": 426, "headers": [(b"content-type", b"text/plain")]})
            await send({"type": "http.response.body", "body": body})
            return
        await receive()  # websocket.connect
        if "asp-v1" not in scope.get("subprotocols", []):
            # SPEC §2: 400 with a body naming the subprotocol, where the server
            # lets an app answer the upgrade itself; else a plain refusal.
            if "websocket.http.response" in scope.get("extensions", {}):
                await send({"type": "websocket.http.response.start", "status": 400, "headers": [(b"content-type", b"text/plain")]})
                await send({"type": "websocket.http.response.body", "body": b"ASP/1 needs the asp-v1 subprotocol (Sec-WebSocket-Protocol: asp-v1)\n"})
            else:
                await send({"type": "websocket.close", "code": 1002})
            return
        await send({"type": "websocket.accept", "subprotocol": "asp-v1"})
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        await self.agent._run(_AsgiWebSocket(receive, send), headers.get("authorization", ""))


class _AsgiWebSocket:
    """What :class:`AgentConnection` uses of a WebSocket, over ASGI."""

    def __init__(self, receive: Callable[[], Any], send: Callable[[Dict[str, Any]], Any]) -> None:
        self._receive = receive
        self._send = send
        self._closed = False

    def __aiter__(self) -> "_AsgiWebSocket":
        return self

    async def __anext__(self) -> Any:
        if self._closed:
            raise StopAsyncIteration
        message = await self._receive()
        if message["type"] == "websocket.disconnect":
            self._closed = True
            raise StopAsyncIteration
        return message["bytes"] if message.get("bytes") is not None else message.get("text", "")

    async def send(self, data: bytes) -> None:
        if self._closed:
            raise ConnectionClosed(None, None)
        try:
            await self._send({"type": "websocket.send", "bytes": data})
        except Exception as error:  # the server's way of saying it is gone
            self._closed = True
            raise ConnectionClosed(None, None) from error

    async def close(self, code: int = 1000, reason: str = "") -> None:
        if not self._closed:
            self._closed = True
            try:
                await self._send({"type": "websocket.close", "code": code, "reason": reason})
            except Exception:
                pass


def _only_the_route(connection: Any, request: Any) -> Any:
    """Refuses, before the upgrade, what SPEC §2 says a server refuses."""
    if request.path.split("?")[0] != _ROUTE:
        return connection.respond(404, f"ASP/1 is served at {_ROUTE}\n")
    offered = [p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",")]
    if "asp-v1" not in offered:
        return connection.respond(400, "ASP/1 needs the asp-v1 subprotocol (Sec-WebSocket-Protocol: asp-v1)\n")
    return None


class AgentConnection(Endpoint):
    """One client of an :class:`Agent`."""

    def __init__(self, agent: Agent, ws: Any, authorization: str) -> None:
        self._agent = agent
        self._loop = asyncio.get_running_loop()
        self._ws: Optional[Any] = ws  # a websockets Connection, or _AsgiWebSocket
        self._outbox: Deque[bytes] = deque()
        self._outbox_ready = asyncio.Event()
        self._timer: Optional[asyncio.TimerHandle] = None
        self._timer_at: Optional[float] = None
        self._local_tools = dict(agent._tools)
        self._handlers: Dict[int, "tuple[asyncio.Task[None], ToolCall]"] = {}
        options = {"name": agent.name, "heartbeatMs": agent._heartbeat_ms, "resume": False}
        self._session = Session.server(options, [t.spec for t in agent._tools.values()], self._loop.time())
        if authorization.startswith("Bearer "):
            self._session.set_transport_token(authorization[len("Bearer ") :])
        self.caller: Optional[str] = None
        """The token the client authenticated with, once accepted."""

    async def run(self) -> None:
        ws = self._ws
        assert ws is not None
        writer = self._loop.create_task(self._write(ws))
        try:
            await self._receive(ws)
        finally:
            self._stop_tools()
            if self._timer is not None:
                self._timer.cancel()
            await writer
            await ws.close()

    def _push(self, op: str, tools: List[Tool]) -> None:
        for tool in tools:
            if op == "remove":
                self._local_tools.pop(tool.spec["name"], None)
            else:
                self._local_tools[tool.spec["name"]] = tool
        try:
            self._session.push_tools(op, [t.spec for t in tools])
        except Exception:  # not open (yet, or any more): HELLO carries the set
            return
        self._pump()

    def _dispatch(self, e: Dict[str, Any]) -> None:
        if self._tool_event(e):
            return
        kind = e["type"]
        if kind == "helloReceived":
            tokens = self._agent._tokens
            if tokens is not None and e.get("token") not in tokens:
                self._session.reject(_UNAUTHENTICATED, "a valid token is required")
            else:
                self.caller = e.get("token")
                self._session.accept(self._loop.time())
        elif kind in ("closed", "detached"):
            # The session ended (or its client went silent): send its last
            # words (ERROR), then close the socket, which ends run().
            self._stop_tools()
            ws = self._ws
            if ws is not None:
                while (data := self._session.poll_transmit()) is not None:
                    self._outbox.append(data)
                self._loop.create_task(self._close_after_flush(ws))
