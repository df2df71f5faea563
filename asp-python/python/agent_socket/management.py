"""A client for ``asp-relay``'s management API (SPEC.md §15.3): reach a
client after its function call has ended — push tools, ask it to go away,
close it, or look at it. Any node of a relay cluster answers for every
connection (§15.4)::

    relay = agent_socket.Management("http://127.0.0.1:9000", secret)
    await relay.push_tools(cid, "add", [{"name": "report", "desc": "ready now"}])
    info = await relay.connection(cid)       # {"state": "open", "tools": [...], ...}
    await relay.goaway(cid, "moving you")    # the client reconnects elsewhere
    await relay.broadcast_tools("add", [...])  # every connection of the relay

Requests go through the standard library's HTTP client on a worker thread,
so the package needs no HTTP dependency for this.
"""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from typing import Any, Dict, List, Optional
from urllib.parse import quote

from ._core import encode_goaway, encode_tool_def
from .function import FRAMES


class ManagementError(Exception):
    """The management API refused a request: ``status`` (401 wrong secret,
    404 unknown connection, 409 the session cannot take frames now, 410
    closed, 503 cluster store unreachable, …) and the relay's ``error``."""

    def __init__(self, status: int, error: str) -> None:
        super().__init__(f"{status}: {error}")
        self.status = status
        self.error = error


class Management:
    """The management API at ``url`` (e.g. ``http://127.0.0.1:9000``, what
    ``asp-relay`` prints as ``management``), authenticated with ``secret``."""

    def __init__(self, url: str, secret: str, *, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self._secret = secret
        self._timeout = timeout

    async def connection(self, connection_id: str) -> Dict[str, Any]:
        """What the relay knows of a connection: ``state``, ``client``,
        ``tools`` (names), ``open_invocations``, ``calls``, …"""
        return await self._request("GET", self._path(connection_id))

    async def send_frames(self, connection_id: str, frames: bytes) -> None:
        """Sends connection-level frames (TOOL_DEF, GOAWAY), in order."""
        await self._request("POST", self._path(connection_id) + "/frames", frames)

    async def push_tools(self, connection_id: str, op: str, tools: List[Dict[str, Any]]) -> None:
        """Changes one client's tools (``op``: ``add``, ``remove``, ``replace``)."""
        await self.send_frames(connection_id, encode_tool_def(op, tools))

    async def goaway(self, connection_id: str, message: Optional[str] = None) -> None:
        """Sends GOAWAY: the client stops new calls here and reconnects."""
        await self.send_frames(connection_id, encode_goaway(None, message))

    async def close(self, connection_id: str) -> None:
        """GOAWAY, then the connection closes after its calls' drain time."""
        await self._request("DELETE", self._path(connection_id))

    async def broadcast_tools(self, op: str, tools: List[Dict[str, Any]]) -> Dict[str, Any]:
        """Pushes a TOOL_DEF to every connection of the relay (or cluster);
        returns ``{"frames", "connections", "nodes"}``."""
        return await self._request("POST", "/v1/frames", encode_tool_def(op, tools))

    def _path(self, connection_id: str) -> str:
        return f"/v1/connections/{quote(connection_id, safe='')}"

    async def _request(self, method: str, path: str, body: Optional[bytes] = None) -> Dict[str, Any]:
        return await asyncio.to_thread(self._blocking, method, path, body)

    def _blocking(self, method: str, path: str, body: Optional[bytes]) -> Dict[str, Any]:
        headers = {"Authorization": f"Bearer {self._secret}"}
        if body is not None:
            headers["Content-Type"] = FRAMES
        request = urllib.request.Request(self.url + path, data=body, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as response:
                raw = response.read()
        except urllib.error.HTTPError as error:
            raw = error.read()
            try:
                message = json.loads(raw)["error"]
            except (ValueError, KeyError, TypeError):
                message = raw.decode(errors="replace") or error.reason
            raise ManagementError(error.code, str(message)) from None
        return json.loads(raw) if raw else {}
