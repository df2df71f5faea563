"""One side of a connection, shared by the client and the agent: pumping
the session (transmits to the writer, events to ``_dispatch``, its timer),
and the tools this side offers its peer — what a handler gets
(:class:`ToolCall`), how one is declared (:class:`Tool`), running them."""

from __future__ import annotations

import asyncio
import inspect
from dataclasses import dataclass
from typing import Any, Callable, Deque, Dict, List, Optional, TYPE_CHECKING

from websockets.asyncio.connection import Connection
from websockets.exceptions import ConnectionClosed

from .errors import AspError

if TYPE_CHECKING:
    from ._core import Session

_TOOL_FAILED = 304
_UNKNOWN_TOOL = 300


class ToolCall:
    """What one of our tools gets besides its arguments when the server
    calls it: :meth:`send` streams output (waiting while the server has no
    credit for it), :meth:`progress` reports progress. An INTERRUPT from the
    server cancels the handler's task (``asyncio.CancelledError``)."""

    def __init__(self, client: "Endpoint", id: int, meta: Dict[str, str], trace: Optional[str]) -> None:
        self.id = id
        self.meta = meta
        self.trace = trace
        self._client = client
        self._writable = asyncio.Event()

    async def send(self, data: "bytes | str") -> None:
        """Streams ``data`` (str is sent as UTF-8)."""
        rest = data.encode() if isinstance(data, str) else bytes(data)
        while rest:
            left = self._client._session.send_chunk(self.id, rest)
            self._client._pump()
            if left == 0:
                return
            rest = rest[len(rest) - left :]
            self._writable.clear()
            await self._writable.wait()

    def progress(self, progress: float, total: Optional[float] = None, message: Optional[str] = None) -> None:
        """Reports progress (advisory: the session may drop an update that
        finds no credit, keeping the latest)."""
        self._client._session.send_progress(self.id, progress, total, message)
        self._client._pump()


@dataclass
class Tool:
    """A tool the server may call on this client: ``spec`` as in HELLO
    (``{"name": …, "desc": …, "input": {JSON Schema}}``), ``handler`` an
    ``async def handler(args, call: ToolCall)`` (or ``handler(args)``)
    returning the result, or an async generator whose items (str or bytes)
    are streamed."""

    spec: Dict[str, Any]
    handler: Callable[..., Any]


def tool_spec(handler: Callable[..., Any], name: Optional[str], desc: Optional[str], input: Optional[Dict[str, Any]]) -> Dict[str, Any]:
    """A tool's spec as HELLO carries it: ``name`` (default: the function's),
    ``desc`` (default: its docstring), ``input`` (a JSON Schema)."""
    spec: Dict[str, Any] = {"name": name or handler.__name__}
    desc = desc or (handler.__doc__ or "").strip() or None
    if desc:
        spec["desc"] = desc
    if input is not None:
        spec["input"] = input
    return spec


async def _call(handler: Callable[..., Any], args: Any, call: ToolCall) -> Any:
    """Runs a handler: ``handler(args, call)`` or ``handler(args)``; an async
    generator's items are streamed (its result is None)."""
    wants_call = len(inspect.signature(handler).parameters) >= 2
    produced = handler(args, call) if wants_call else handler(args)
    if inspect.isasyncgen(produced):
        async for item in produced:
            await call.send(item)
        return None
    if inspect.isawaitable(produced):
        return await produced
    return produced


class Endpoint:
    """The loop around one session. A subclass sets the attributes below in
    its ``__init__`` and implements ``_dispatch`` for the events that are not
    about our tools."""

    _session: "Session"
    _loop: asyncio.AbstractEventLoop
    _ws: Optional[Connection]
    _outbox: Deque[bytes]
    _outbox_ready: asyncio.Event
    _timer: Optional[asyncio.TimerHandle]
    _timer_at: Optional[float]
    _local_tools: Dict[str, Tool]
    _handlers: Dict[int, "tuple[asyncio.Task[None], ToolCall]"]

    def _dispatch(self, e: Dict[str, Any]) -> None:
        raise NotImplementedError

    async def _receive(self, ws: Connection) -> None:
        """Feeds what ``ws`` receives to the session until it closes, then
        tells the session the transport is gone."""
        try:
            async for message in ws:
                now = self._loop.time()
                if isinstance(message, str):
                    self._session.handle_text_message(now)
                else:
                    self._session.handle_message(message, now)
                self._pump()
        except ConnectionClosed:
            pass
        finally:
            if self._ws is ws:
                self._ws = None
                self._outbox_ready.set()  # the writer sees the socket is gone
                self._session.handle_transport_closed(self._loop.time())
                self._pump()

    async def _write(self, ws: Connection) -> None:
        while self._ws is ws:
            await self._outbox_ready.wait()
            self._outbox_ready.clear()
            if not await self._flush(ws):
                return

    async def _flush(self, ws: Connection) -> bool:
        while self._outbox and self._ws is ws:
            data = self._outbox.popleft()
            try:
                await ws.send(data)
            except ConnectionClosed:
                return False
        return True

    def _pump(self) -> None:
        for _ in range(64):
            busy = False
            if self._ws is not None:
                while (data := self._session.poll_transmit()) is not None:
                    self._outbox.append(data)
                    busy = True
            while (event := self._session.poll_event()) is not None:
                self._dispatch(event)
                busy = True
            if not busy:
                break
        if self._outbox:
            self._outbox_ready.set()
        self._arm()

    def _drain_events(self) -> None:
        while (event := self._session.poll_event()) is not None:
            self._dispatch(event)

    def _arm(self) -> None:
        at = self._session.poll_timeout()
        if at == self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer, self._timer_at = None, at
        if at is not None:
            self._timer = self._loop.call_at(at, self._on_timer)

    def _on_timer(self) -> None:
        self._timer, self._timer_at = None, None
        self._session.handle_timeout(self._loop.time())
        self._pump()

    async def _close_after_flush(self, ws: Connection) -> None:
        await self._flush(ws)
        await ws.close()

    def _tool_event(self, e: Dict[str, Any]) -> bool:
        """Handles the events about our tools; False for any other."""
        kind = e["type"]
        if kind == "invoked":
            self._run_tool(e)
        elif kind == "interrupted":
            entry = self._handlers.pop(e["id"], None)
            if entry is not None:
                entry[0].cancel()
        elif kind == "writable":
            for _, call in self._handlers.values():
                call._writable.set()
        else:
            return False
        return True

    def _stop_tools(self) -> None:
        for task, _ in self._handlers.values():
            task.cancel()
        self._handlers.clear()

    def _run_tool(self, e: Dict[str, Any]) -> None:
        id = e["id"]
        tool = self._local_tools.get(e["tool"])
        if tool is None:
            self._session.fail(id, _UNKNOWN_TOOL, f"no tool named {e['tool']}")
            return
        call = ToolCall(self, id, e.get("meta") or {}, e.get("trace"))

        async def run() -> None:
            try:
                result = await _call(tool.handler, e["args"], call)
            except asyncio.CancelledError:
                return  # interrupted: the session has answered already
            except AspError as error:
                self._finish(id, lambda: self._session.fail(id, error.code, error.message))
            except Exception as error:  # the tool's own failure
                self._finish(id, lambda: self._session.fail(id, _TOOL_FAILED, f"{type(error).__name__}: {error}"))
            else:
                self._finish(id, lambda: self._session.complete(id, result, self._loop.time()))

        task = self._loop.create_task(run())
        self._handlers[id] = (task, call)

    def _finish(self, id: int, end: Callable[[], None]) -> None:
        if self._handlers.pop(id, None) is None:
            return  # interrupted or the session ended meanwhile
        try:
            end()
        except Exception:  # the session refused (it is closing)
            pass
        self._pump()
