"""Agent Socket (ASP/1) for Python.

The protocol runs in asp-proto's Rust ``Session`` (``agent_socket._core``,
built with PyO3): the same state machine the Rust and JavaScript clients
run. This package moves bytes between it, a WebSocket (the ``websockets``
package) and asyncio's timers::

    import agent_socket

    client = await agent_socket.connect("wss://agent.example/v1/agent-socket", token=token)
    call = client.invoke("tokens", {"n": 5})
    async for chunk in call:          # bytes; cancelling the task interrupts the call
        print(chunk.decode(), end="")
    done = await call.result()        # raises AspError with the wire code
    print(done.result, done.wall_us)
    await client.close()

Agents are served with :class:`Agent` (``websockets`` or any ASGI server);
tools for ``asp-relay`` are written with :class:`Function` (an ASGI app)
and its management API is reached with :class:`Management`.
"""

from ._core import decode_frames, error_name
from .agent import Agent, AgentConnection
from ._endpoint import Tool, ToolCall
from .client import Client, Completion, Invocation, Progress, connect
from .errors import AspError, ConnectError, FrameError, RefusedError
from .function import Function, FunctionCall, FunctionConnection
from .management import Management, ManagementError

__all__ = [
    "Agent",
    "AgentConnection",
    "AspError",
    "Client",
    "Completion",
    "ConnectError",
    "FrameError",
    "Function",
    "FunctionCall",
    "FunctionConnection",
    "Invocation",
    "Management",
    "ManagementError",
    "Progress",
    "RefusedError",
    "Tool",
    "ToolCall",
    "connect",
    "decode_frames",
    "error_name",
]
