"""The asyncio client: a WebSocket (the ``websockets`` package) and
asyncio's timers driving asp-proto's client ``Session``.

Nothing of the protocol is written here: bytes, time and application
commands go into ``_core.Session``; transmits, events and the next
deadline come out of it.
"""

from __future__ import annotations

import asyncio
from collections import deque
import ssl as ssl_module
from dataclasses import dataclass
from typing import Any, Callable, Deque, Dict, List, Optional, Sequence, Set

from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import InvalidHandshake, InvalidStatus, InvalidURI

from ._core import Session
from .errors import AspError, ConnectError
from ._endpoint import Endpoint, Tool, ToolCall

_BACKOFF_MIN = 0.05
_BACKOFF_MAX = 2.0
_SESSION_LOST = 305
_END = object()


@dataclass
class Completion:
    """What a completed invocation returns."""

    result: Any
    wall_us: int
    cpu_us: Optional[int]


@dataclass
class Progress:
    """Progress of an invocation, as the tool reported it (advisory)."""

    progress: float
    total: Optional[float]
    message: Optional[str]


class Invocation:
    """One invocation. Iterate it (``async for``) for the streamed output
    as ``bytes`` (credit goes back to the server as you consume), await
    :meth:`result` for the outcome. Cancelling the task that iterates or
    awaits it sends INTERRUPT. Progress updates go to :attr:`on_progress`
    and are kept in :attr:`progress`."""

    def __init__(self, client: "Client", id: int) -> None:
        self.id = id
        self.progress: List[Progress] = []
        self.on_progress: Optional[Callable[[Progress], None]] = None
        self._client = client
        self._chunks: "asyncio.Queue[Any]" = asyncio.Queue()
        self._outcome: "asyncio.Future[Completion]" = asyncio.get_running_loop().create_future()
        # The outcome is also read through iteration: never "never retrieved".
        self._outcome.add_done_callback(lambda f: f.cancelled() or f.exception())

    def __aiter__(self) -> "Invocation":
        return self

    async def __anext__(self) -> bytes:
        try:
            chunk = await self._chunks.get()
        except asyncio.CancelledError:
            self._client._interrupt(self.id)
            raise
        if chunk is _END:
            self._chunks.put_nowait(_END)  # stays ended for another reader
            await self.result()  # raises the invocation's error
            raise StopAsyncIteration
        self._client._grant(self.id, len(chunk))
        return chunk

    async def result(self) -> Completion:
        """The outcome; raises :class:`AspError` with the wire code."""
        try:
            return await asyncio.shield(self._outcome)
        except asyncio.CancelledError:
            if not self._outcome.done():
                self._client._interrupt(self.id)
            raise

    async def text(self) -> str:
        """The whole output decoded as UTF-8 (then :meth:`result` is ready)."""
        parts = [chunk async for chunk in self]
        return b"".join(parts).decode()

    def _chunk(self, data: bytes) -> None:
        self._chunks.put_nowait(data)

    def _progress(self, progress: Progress) -> None:
        self.progress.append(progress)
        if self.on_progress is not None:
            self.on_progress(progress)

    def _done(self, completion: Optional[Completion] = None, error: Optional[BaseException] = None) -> None:
        if not self._outcome.done():
            if error is not None:
                self._outcome.set_exception(error)
            else:
                self._outcome.set_result(completion)  # type: ignore[arg-type]
        self._chunks.put_nowait(_END)


class Client(Endpoint):
    """A connected client; make one with :func:`connect`."""

    def __init__(self, url: str, options: Dict[str, Any], tools: Sequence[Tool], ssl: Optional[ssl_module.SSLContext], open_timeout: float) -> None:
        self.url = url
        self._loop = asyncio.get_running_loop()
        self._ssl = ssl
        self._open_timeout = open_timeout
        self._local_tools: Dict[str, Tool] = {t.spec["name"]: t for t in tools}
        self._handlers: Dict[int, "tuple[asyncio.Task[None], ToolCall]"] = {}
        self._session = Session.client(options, [t.spec for t in tools], self._loop.time())
        self._ws: Optional[ClientConnection] = None
        self._outbox: Deque[bytes] = deque()
        self._outbox_ready = asyncio.Event()
        self._invocations: Dict[int, Invocation] = {}
        self._opened: "asyncio.Future[None]" = self._loop.create_future()
        self._closed: "asyncio.Future[AspError]" = self._loop.create_future()
        self._opened.add_done_callback(lambda f: f.cancelled() or f.exception())
        self._timer: Optional[asyncio.TimerHandle] = None
        self._timer_at: Optional[float] = None
        self._tasks: Set["asyncio.Task[None]"] = set()
        self._reconnecting = False
        self._backoff = _BACKOFF_MIN
        self._attempt = 0
        self.on_tools_changed: Optional[Callable[[], None]] = None
        """Called when the server pushes a change to its tools (TOOL_DEF)."""
        self.on_state: Optional[Callable[[str, Dict[str, Any]], None]] = None
        """Called with ``reconnecting``, ``resumed``, ``draining`` or ``closed``."""

    # ------------------------------------------------------------ the API

    @property
    def connection_id(self) -> Optional[str]:
        """The connection id the server assigned."""
        return self._session.connection_id

    @property
    def tools(self) -> List[Dict[str, Any]]:
        """The server's tools (dicts with ``name``, ``desc``, ``input``, …)."""
        return self._session.peer_tools()

    @property
    def state(self) -> str:
        """``handshaking``, ``open``, ``draining``, ``detached`` or ``closed``."""
        return self._session.state

    @property
    def rtt(self) -> Optional[float]:
        """Round-trip time from PING/PONG, in seconds."""
        return self._session.rtt

    def invoke(self, tool: str, args: Any = None, *, timeout_ms: Optional[int] = None, meta: Optional[Dict[str, str]] = None, trace: Optional[str] = None) -> Invocation:
        """Invokes ``tool`` with ``args`` (dict, list, str, bytes, int, float,
        bool or None); raises :class:`RefusedError` if the session cannot."""
        options = {"timeoutMs": timeout_ms, "meta": meta, "trace": trace}
        id = self._session.invoke(tool, args, self._loop.time(), options)
        invocation = Invocation(self, id)
        self._invocations[id] = invocation
        self._pump()
        return invocation

    def push_tools(self, op: str, tools: Sequence[Tool]) -> None:
        """Changes the tools this client offers (``add``, ``remove`` or
        ``replace``) and tells the server (TOOL_DEF)."""
        if op == "replace":
            self._local_tools.clear()
        for tool in tools:
            if op == "remove":
                self._local_tools.pop(tool.spec["name"], None)
            else:
                self._local_tools[tool.spec["name"]] = tool
        self._session.push_tools(op, [t.spec for t in tools])
        self._pump()

    async def close(self) -> None:
        """Ends the session (NO_ERROR) and closes the socket."""
        if not self._session.is_closed:
            self._session.close(0, "client closed")
            self._pump()
        ws = self._ws
        if ws is not None:
            await self._flush(ws)
            await ws.close()

    async def closed(self) -> AspError:
        """Waits for the session's end; returns why (code 0: NO_ERROR)."""
        return await asyncio.shield(self._closed)

    # ------------------------------------------------------------ the loop

    async def _start(self) -> None:
        try:
            self._attach(await self._dial())
        except ConnectError as e:
            self._session.close(0, str(e))
            self._drain_events()
            raise
        self._pump()
        await self._opened

    async def _dial(self) -> ClientConnection:
        try:
            # PING and size limits are the session's (SPEC §8, §12), not the
            # WebSocket library's; no compression (SPEC §2).
            options: Dict[str, Any] = {"max_size": None, "compression": None, "ping_interval": None, "open_timeout": None}
            if self._ssl is not None:
                options["ssl"] = self._ssl
            ws = await asyncio.wait_for(ws_connect(self.url, subprotocols=["asp-v1"], **options), self._open_timeout)
        except asyncio.TimeoutError:
            raise ConnectError("timeout", f"{self.url}: the WebSocket did not open within {self._open_timeout} s") from None
        except InvalidStatus as e:
            raise ConnectError("websocket", f"{self.url}: the server answered the upgrade with HTTP {e.response.status_code}") from None
        except (InvalidHandshake, InvalidURI, OSError) as e:
            raise ConnectError("websocket", f"{self.url}: the WebSocket did not open ({e})") from None
        if ws.subprotocol != "asp-v1":
            await ws.close()
            raise ConnectError("subprotocol", f"{self.url}: the server did not select the asp-v1 subprotocol: not an ASP/1 endpoint")
        return ws

    def _attach(self, ws: ClientConnection) -> None:
        self._ws = ws
        self._outbox.clear()
        for job in (self._receive(ws), self._write(ws)):
            task = self._loop.create_task(job)
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _interrupt(self, id: int) -> None:
        if id in self._invocations:
            try:
                self._session.interrupt(id, "cancelled")
            except Exception:  # already over
                pass
            self._pump()

    def _grant(self, id: int, size: int) -> None:
        self._session.grant(id, size)
        self._pump()

    def _state(self, state: str, **detail: Any) -> None:
        if self.on_state is not None:
            self.on_state(state, detail)

    def _dispatch(self, e: Dict[str, Any]) -> None:
        kind = e["type"]
        if kind == "connected":
            self._backoff, self._attempt = _BACKOFF_MIN, 0
            if e["resumed"]:
                self._state("resumed", cid=e["cid"])
            if not self._opened.done():
                self._opened.set_result(None)
        elif kind == "chunk":
            inv = self._invocations.get(e["id"])
            if inv is not None:
                inv._chunk(bytes(e["data"]))
        elif kind == "progress":
            inv = self._invocations.get(e["id"])
            if inv is not None:
                inv._progress(Progress(e["progress"], e.get("total"), e.get("message")))
        elif kind == "completed":
            inv = self._invocations.pop(e["id"], None)
            if inv is not None:
                inv._done(Completion(e["result"], e["wallUs"], e.get("cpuUs")))
        elif kind == "failed":
            inv = self._invocations.pop(e["id"], None)
            if inv is not None:
                inv._done(error=AspError(e["code"], e.get("name"), e["message"]))
        elif self._tool_event(e):
            pass
        elif kind == "toolsChanged":
            if self.on_tools_changed is not None:
                self.on_tools_changed()
        elif kind == "goaway":
            self._state("draining", message=e.get("message"))
        elif kind == "detached":
            ws, self._ws = self._ws, None
            if ws is not None:  # a silent peer: drop the socket
                self._loop.create_task(ws.close())
            self._schedule_reconnect()
        elif kind == "closed":
            error = AspError(e["code"], e.get("name"), e["message"])
            for inv in self._invocations.values():
                code = e["code"] or _SESSION_LOST
                inv._done(error=AspError(code, None if code != e["code"] else e.get("name"), e["message"]))
            self._invocations.clear()
            self._stop_tools()
            if not self._opened.done():
                self._opened.set_exception(ConnectError("refused", f"{self.url}: {error}"))
            if not self._closed.done():
                self._closed.set_result(error)
            self._state("closed", code=e["code"], message=e["message"])
            ws = self._ws
            if ws is not None:
                while (data := self._session.poll_transmit()) is not None:
                    self._outbox.append(data)  # the session's last words (ERROR 0)
                self._loop.create_task(self._close_after_flush(ws))

    def _schedule_reconnect(self) -> None:
        if self._reconnecting or self._session.is_closed or self._session.state != "detached":
            return
        self._reconnecting = True
        self._attempt += 1
        delay, self._backoff = self._backoff, min(self._backoff * 2, _BACKOFF_MAX)
        self._state("reconnecting", attempt=self._attempt, delay=delay)
        self._loop.call_later(delay, lambda: self._loop.create_task(self._redial()))

    async def _redial(self) -> None:
        self._reconnecting = False
        if self._session.state != "detached" or self._ws is not None:
            return
        try:
            ws = await self._dial()
        except ConnectError:
            self._schedule_reconnect()
            return
        if self._session.state != "detached":
            await ws.close()
            return
        self._session.reconnect(self._loop.time())
        self._attach(ws)
        self._pump()


async def connect(
    url: str,
    *,
    token: Optional[str] = None,
    name: Optional[str] = None,
    tools: Sequence[Tool] = (),
    ssl: Optional[ssl_module.SSLContext] = None,
    resume: bool = True,
    heartbeat_ms: Optional[int] = None,
    open_timeout: float = 10.0,
) -> Client:
    """Connects to an ASP/1 server at ``url`` (``wss://``, or ``ws://`` on a
    trusted network) and completes the handshake. ``ssl``: a context that
    trusts the server (default: the system's CAs); ``tools``: tools the
    server may call on this client. Raises
    :class:`ConnectError` when no session could be opened."""
    options = {"token": token, "name": name, "resume": resume, "heartbeatMs": heartbeat_ms}
    client = Client(url, options, tools, ssl, open_timeout)
    await client._start()
    return client
