"""Exceptions of agent_socket, each carrying what went wrong on the wire."""

from __future__ import annotations

from typing import Optional


class AspError(Exception):
    """A failure with an ASP/1 wire code (SPEC.md §7): ``code`` 300 is
    ``UNKNOWN_TOOL``, 302 ``CANCELLED``, … ``name`` is the SPEC's name for
    the code, or None for a code it does not name."""

    def __init__(self, code: int, name: Optional[str], message: str) -> None:
        super().__init__(f"{code}{' ' + name if name else ''}: {message}")
        self.code = code
        self.name = name
        self.message = message


class FrameError(AspError):
    """Bytes that are not a valid ASP/1 frame (from ``decode_frames``)."""


class ConnectError(Exception):
    """No session was opened: ``kind`` is ``websocket``, ``subprotocol``,
    ``timeout`` or ``refused`` (the server closed the handshake)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class RefusedError(Exception):
    """The session refused a command: ``kind`` is ``blocked``, ``notOpen``,
    ``wrongState``, ``tooManyInvocations``, ``goingAway``, ``tooLarge`` or
    ``invalid``."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
