"""An MCP server on the official MCP Python SDK (MCPServer, FastMCP's name in
mcp 2) for the bridge tests: `python fastmcp_server.py stdio MARKER` or
`python fastmcp_server.py http PORT MARKER`. MARKER is a file the server
appends a line to when a call is cancelled (so the test can see it)."""

import asyncio
import os
import sys

from mcp.server.mcpserver import Context, MCPServer

server = MCPServer("fastmcp-under-test")
MARKER = sys.argv[-1]


@server.tool()
def echo(text: str) -> str:
    """Returns its text."""
    return text


@server.tool()
async def tokens(n: int, ctx: Context) -> str:
    """Reports n progress notifications, then says how many."""
    for i in range(n):
        await ctx.report_progress(i + 1, n, f"token {i}")
    return f"{n} tokens"


@server.tool()
async def slow(seconds: float) -> str:
    """Sleeps; a cancellation is written to the marker file."""
    try:
        await asyncio.sleep(seconds)
    except asyncio.CancelledError:
        with open(MARKER, "a") as marker:
            marker.write("cancelled\n")
        raise
    return "slept"


@server.tool()
async def grow(name: str, ctx: Context) -> str:
    """Adds a tool named `name` and says the list changed."""
    server.add_tool(lambda: f"I am {name}", name=name, description="added by grow")
    # 2026-07-28 clients hear it on their subscriptions/listen stream,
    # clients of earlier versions as a plain notification.
    await ctx.notify_tools_changed()
    await ctx.session.send_tool_list_changed()
    return name


@server.tool()
def crash() -> str:
    """Exits the server mid-call."""
    os._exit(3)


if __name__ == "__main__":
    if sys.argv[1] == "http":
        server.run(transport="streamable-http", host="127.0.0.1", port=int(sys.argv[2]))
    else:
        server.run()
