"""The MCP side of bench/figures.py: the official MCP Python SDK's server
(MCPServer, FastMCP's name in mcp 2) over Streamable HTTP with the same two
tools as `asp serve`'s: echo, and a stream of n progress notifications."""

import sys

from mcp.server.mcpserver import Context, MCPServer

server = MCPServer("bench")


@server.tool()
def echo(q: str) -> str:
    """Returns its argument."""
    return q


@server.tool()
async def tokens(n: int, ctx: Context) -> int:
    """Reports n progress notifications (MCP's way to stream), then n."""
    for i in range(n):
        await ctx.report_progress(i + 1, n, "token")
    return n


if __name__ == "__main__":
    server.run(transport="streamable-http", host="127.0.0.1", port=int(sys.argv[1]))
