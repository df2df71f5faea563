"""Relay functions: tools for ``asp-relay`` (SPEC.md §15) written as
decorated async functions and async generators, served as an ASGI app.

The relay holds the clients' WebSocket sessions and calls the function over
HTTP once per INVOKE. This module answers those calls in **frames mode**,
with frames the Rust core encodes (never by hand): a generator's items
become STREAM output, ``call.progress`` progress, ``call.push_tools`` a
TOOL_DEF, the return value COMPLETE and an exception ERROR. The
connection's stored function state is a Python value here (MsgPack inside
``X-Asp-State``)::

    fn = agent_socket.Function(credential=os.environ.get("FUNCTION_TOKEN"))

    @fn.tool(desc="Counts calls on this connection")
    async def count(args, call):
        call.state = (call.state or 0) + 1     # kept by the relay between calls
        return call.state

    @fn.tool()
    async def words(args, call):               # streamed, one chunk per word
        for word in args["text"].split():
            yield word + " "

    # uvicorn module:fn --port 8080, then:
    # asp-relay --function http://127.0.0.1:8080 --tools tools.json  (fn.tools_json())

An INTERRUPT (or the INVOKE's deadline) makes the relay abort the request;
the handler then gets ``asyncio.CancelledError``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
from typing import Any, Callable, Dict, List, Optional, Tuple

from ._core import encode_complete, encode_error, encode_progress, encode_stream, encode_tool_def, pack, unpack
from ._endpoint import Tool, _call, tool_spec
from .errors import AspError

FRAMES = "application/vnd.asp.frames"
"""The content type of a frames-mode body (SPEC §15.2)."""

_TOOL_FAILED = 304
_MAX_REQUEST = 16 * 1024 * 1024
# Output queued for the relay before ``send`` waits: the relay itself reads
# a call's body only while it holds less than its body window (64 KiB), so
# the function's writes slow down with the client, as SPEC §15.2 wants.
_WINDOW = 64 * 1024
_CHUNK = 16 * 1024
_NO_STATE = object()


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def from_json(value: Any) -> Any:
    """A JSON request value as the MsgPack value the client sent (SPEC §15.2's
    mapping reversed): ``{"$bin": base64}`` → bytes, ``{"$ext": [type,
    base64]}`` → ``[type, bytes]``."""
    if isinstance(value, dict):
        if len(value) == 1 and isinstance(value.get("$bin"), str):
            return base64.b64decode(value["$bin"])
        ext = value.get("$ext") if len(value) == 1 else None
        if isinstance(ext, list) and len(ext) == 2 and isinstance(ext[1], str):
            return [ext[0], base64.b64decode(ext[1])]
        return {k: from_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [from_json(v) for v in value]
    return value


class _StateHolder:
    """The connection's function state: bytes from the relay, a Python value
    to the handler, and what goes back in ``X-Asp-State``."""

    def __init__(self, raw: Optional[bytes]) -> None:
        self.state_bytes = raw
        self._decoded: Any = _NO_STATE
        self._changed = False
        self._sealed: Optional[str] = None

    @property
    def state(self) -> Any:
        """The stored state as a Python value (None when there is none).
        Raises ``ValueError`` when the bytes are not one MsgPack value (a
        state written by something other than this module)."""
        if self._decoded is _NO_STATE:
            self._decoded = None if not self.state_bytes else unpack(self.state_bytes)
        return self._decoded

    @state.setter
    def state(self, value: Any) -> None:
        if self._sealed is not None:
            raise RuntimeError(
                f"the function state travels in the response head (X-Asp-State), which went out with {self._sealed}: "
                "set call.state before the call's first output, progress or tool push"
            )
        self.state_bytes = None if value is None else pack(value)
        self._decoded = value
        self._changed = True

    def _state_headers(self, sealed_by: str) -> List[Tuple[bytes, bytes]]:
        self._sealed = sealed_by
        if not self._changed:
            return []
        return [(b"x-asp-state", _b64url_encode(self.state_bytes or b"").encode())]


class FunctionConnection(_StateHolder):
    """What ``@fn.on_connect`` and ``@fn.on_disconnect`` handlers get:
    ``connection_id``, ``client`` (``{"name", "caps"}``) and ``state``
    (settable in ``on_connect``: it becomes the connection's initial state)."""

    def __init__(self, connection_id: str, client: Dict[str, Any], raw_state: Optional[bytes]) -> None:
        super().__init__(raw_state)
        self.connection_id = connection_id
        self.client = client


class FunctionCall(_StateHolder):
    """One invocation the relay forwarded: ``connection_id``, ``request_id``,
    ``tool``, ``meta``, ``timeout_ms`` (and ``deadline`` on ``loop.time()``),
    ``trace`` (the ``traceparent``), and the connection's ``state``.

    Output, progress and tool pushes are frames of this call's response body,
    written in order by a task of their own."""

    def __init__(self, body: Dict[str, Any], trace: Optional[str], send: Callable[[Dict[str, Any]], Any]) -> None:
        super().__init__(body.get("state"))
        loop = asyncio.get_running_loop()
        self.connection_id: str = body["connection_id"]
        self.request_id: int = int(body["request_id"])
        self.tool: str = body["tool"]
        self.meta: Dict[str, str] = body.get("meta") or {}
        self.timeout_ms: Optional[int] = body.get("timeout_ms")
        self.deadline: Optional[float] = None if self.timeout_ms is None else loop.time() + self.timeout_ms / 1000
        self.trace = trace
        self._send = send
        self._frames: "asyncio.Queue[Optional[bytes]]" = asyncio.Queue()
        self._queued = 0
        self._room = asyncio.Event()
        self._room.set()
        self._head_sent = False
        self._writer = loop.create_task(self._write())

    async def send(self, data: "bytes | str") -> None:
        """Streams ``data`` (str as UTF-8) to the client; waits while more
        than 64 KiB of this call's output is on its way."""
        raw = data.encode() if isinstance(data, str) else bytes(data)
        for start in range(0, len(raw), _CHUNK):
            self._put(encode_stream(self.request_id, raw[start : start + _CHUNK]), "output")
        while self._queued > _WINDOW:
            self._room.clear()
            await self._room.wait()

    def progress(self, progress: float, total: Optional[float] = None, message: Optional[str] = None) -> None:
        """Reports progress to the client."""
        self._put(encode_progress(self.request_id, progress, total, message), "progress")

    def push_tools(self, op: str, tools: List[Dict[str, Any]]) -> None:
        """Changes the tools this connection's client sees (``op``: ``add``,
        ``remove`` or ``replace``; ``tools`` as in HELLO). The relay applies
        it to the connection's tool set and forwards it."""
        self._put(encode_tool_def(op, tools), "a tool push")

    def _put(self, frame: bytes, what: str) -> None:
        if self._sealed is None:
            self._sealed = what
        self._queued += len(frame)
        self._frames.put_nowait(frame)

    async def _write(self) -> None:
        while True:
            frame = await self._frames.get()
            batch = [frame] if frame is not None else []
            done = frame is None
            while not done and not self._frames.empty():
                more = self._frames.get_nowait()
                if more is None:
                    done = True
                else:
                    batch.append(more)
            await self._head()
            if batch:
                body = b"".join(batch)
                await self._send({"type": "http.response.body", "body": body, "more_body": True})
                self._queued -= len(body)
                if self._queued <= _WINDOW:
                    self._room.set()
            if done:
                await self._send({"type": "http.response.body", "body": b"", "more_body": False})
                return

    async def _head(self) -> None:
        if self._head_sent:
            return
        self._head_sent = True
        headers = [(b"content-type", FRAMES.encode())] + self._state_headers(self._sealed or "the result")
        await self._send({"type": "http.response.start", "status": 200, "headers": headers})

    async def _finish(self, last: bytes) -> None:
        """Writes the terminal frame and ends the body."""
        if self._sealed is None:
            self._sealed = "the result"
        self._frames.put_nowait(last)
        self._frames.put_nowait(None)
        await self._writer

    def _abandon(self) -> None:
        self._writer.cancel()


class Function:
    """A relay function: tools, optional connection hooks, and the ASGI app
    that serves them (the instance itself: ``uvicorn module:fn``).

    ``credential``: when set, every request must carry ``Authorization:
    Bearer <credential>`` (``asp-relay --function-token``); others get 401.
    """

    def __init__(self, *, credential: Optional[str] = None) -> None:
        self._credential = credential
        self._tools: Dict[str, Tool] = {}
        self._on_connect: Optional[Callable[[FunctionConnection], Any]] = None
        self._on_disconnect: Optional[Callable[[FunctionConnection], Any]] = None

    def tool(self, name: Optional[str] = None, *, desc: Optional[str] = None, input: Optional[Dict[str, Any]] = None) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Decorates ``async def f(args, call: FunctionCall)`` (or ``f(args)``,
        or an async generator, whose items are streamed) as a tool."""

        def register(handler: Callable[..., Any]) -> Callable[..., Any]:
            self._tools[name or handler.__name__] = Tool(tool_spec(handler, name, desc, input), handler)
            return handler

        return register

    def on_connect(self, handler: Callable[[FunctionConnection], Any]) -> Callable[[FunctionConnection], Any]:
        """Decorates ``async def f(connection)``, run on ``POST /connect``
        (``asp-relay --lifecycle-calls``); it may set ``connection.state``."""
        self._on_connect = handler
        return handler

    def on_disconnect(self, handler: Callable[[FunctionConnection], Any]) -> Callable[[FunctionConnection], Any]:
        """Decorates ``async def f(connection)``, run on ``POST /disconnect``."""
        self._on_disconnect = handler
        return handler

    @property
    def tools(self) -> List[Dict[str, Any]]:
        """The tools' specs, for the relay's HELLO."""
        return [t.spec for t in self._tools.values()]

    def tools_json(self) -> str:
        """:attr:`tools` as the JSON file ``asp-relay --tools`` reads."""
        return json.dumps(self.tools, indent=2)

    async def __call__(self, scope: Dict[str, Any], receive: Callable[[], Any], send: Callable[[Dict[str, Any]], Any]) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                kind = message["type"].rsplit(".", 1)[-1]
                await send({"type": f"lifespan.{kind}.complete"})
                if kind == "shutdown":
                    return
        if scope["type"] != "http":
            return
        path = scope["path"]
        root = scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root) :]
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        if self._credential is not None and headers.get("authorization") != f"Bearer {self._credential}":
            return await _answer(send, 401, "a valid Authorization: Bearer <function credential> is required")
        if path not in ("/invoke", "/connect", "/disconnect"):
            return await _answer(send, 404, f"no route {path}: a relay function serves /invoke, /connect and /disconnect")
        if scope["method"] != "POST":
            return await _answer(send, 405, f"{path} takes POST")
        try:
            body = await _read_body(receive, headers.get("content-type", ""))
        except ValueError as error:
            return await _answer(send, 413 if "larger" in str(error) else 400, str(error))
        if path == "/invoke":
            await self._invoke(body, headers.get("traceparent"), receive, send)
        else:
            await self._lifecycle(path, body, send)

    async def _lifecycle(self, path: str, body: Dict[str, Any], send: Callable[[Dict[str, Any]], Any]) -> None:
        connection = FunctionConnection(body.get("connection_id", ""), body.get("client") or {}, body.get("state"))
        handler = self._on_connect if path == "/connect" else self._on_disconnect
        if handler is not None:
            await handler(connection)
        headers = connection._state_headers("the answer") if path == "/connect" else []
        await send({"type": "http.response.start", "status": 204, "headers": headers})
        await send({"type": "http.response.body", "body": b""})

    async def _invoke(self, body: Dict[str, Any], trace: Optional[str], receive: Callable[[], Any], send: Callable[[Dict[str, Any]], Any]) -> None:
        missing = [key for key in ("connection_id", "request_id", "tool") if key not in body]
        if missing:
            return await _answer(send, 400, f"the request body lacks {', '.join(missing)} (SPEC §15.2)")
        tool = self._tools.get(body["tool"])
        if tool is None:
            # SPEC §15.2: 404 is the relay's UNKNOWN_TOOL.
            return await _answer(send, 404, f"no tool named {body.get('tool')!r}")
        call = FunctionCall(body, trace, send)
        loop = asyncio.get_running_loop()
        handler = loop.create_task(_call(tool.handler, body.get("args"), call))
        # The relay aborts the request on INTERRUPT or the deadline: the
        # server reports the disconnect through receive().
        disconnected = loop.create_task(_wait_disconnect(receive))
        await asyncio.wait([handler, disconnected], return_when=asyncio.FIRST_COMPLETED)
        if not handler.done():
            handler.cancel()
            call._abandon()
            await asyncio.gather(handler, return_exceptions=True)
            return
        disconnected.cancel()
        try:
            last = encode_complete(call.request_id, handler.result())
        except AspError as error:
            last = encode_error(call.request_id, error.code, error.message)
        except asyncio.CancelledError:
            call._abandon()
            return
        except Exception as error:  # the tool's own failure (or an unencodable result)
            last = encode_error(call.request_id, _TOOL_FAILED, f"{type(error).__name__}: {error}")
        await call._finish(last)


async def _read_body(receive: Callable[[], Any], content_type: str) -> Dict[str, Any]:
    chunks: List[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ValueError("the relay went away before the request body arrived")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > _MAX_REQUEST:
            raise ValueError(f"request body larger than {_MAX_REQUEST} bytes")
        chunks.append(chunk)
        if not message.get("more_body"):
            break
    raw = b"".join(chunks)
    if content_type.split(";")[0].strip() == "application/msgpack":
        body = unpack(raw)
    else:
        try:
            body = json.loads(raw or b"{}")
        except json.JSONDecodeError as error:
            raise ValueError(f"request body is not JSON: {error}") from None
        if isinstance(body, dict):
            body["args"] = from_json(body.get("args"))
            if isinstance(body.get("state"), str):
                try:
                    body["state"] = _b64url_decode(body["state"])
                except (binascii.Error, ValueError):
                    raise ValueError("state is not base64url") from None
    if not isinstance(body, dict):
        raise ValueError("request body is not a map")
    return body


async def _wait_disconnect(receive: Callable[[], Any]) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def _answer(send: Callable[[Dict[str, Any]], Any], status: int, error: str) -> None:
    body = json.dumps({"error": error}).encode()
    await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})
