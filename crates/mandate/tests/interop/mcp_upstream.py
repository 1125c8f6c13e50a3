"""A real MCP server (the official `mcp` SDK's FastMCP) for the MCP gateway's end-to-end
test: the upstream behind Mandate's gateway, over the Streamable HTTP transport.

Tools:
  add(a, b)                  -> a + b
  slow_count(n, delay_ms)    counts to n, sending a progress notification and a log
                             message per step (so a streamed SSE response is visible
                             to the client as it happens), then returns "counted to n"
  delete_everything(confirm) the call a policy should never let through

Besides /mcp it serves GET /calls (not an MCP tool, so no MCP client can see or call
it): how often each tool ran, how many HTTP requests reached /mcp, and how many of
them carried an `Authorization` header (the gateway must never pass the agent's token
through: that count must stay 0).

Usage: mcp_upstream.py [--port N]  (default 0: any free port). Prints one JSON line
{"url": "http://127.0.0.1:PORT/mcp", "calls": "http://127.0.0.1:PORT/calls"} on stdout
once it listens, then serves until killed.
"""

import argparse
import asyncio
import json
import socket
import sys

import uvicorn
from mcp.server.fastmcp import Context, FastMCP
from starlette.requests import Request
from starlette.responses import JSONResponse

CALLS: dict[str, int] = {"add": 0, "slow_count": 0, "delete_everything": 0}
HTTP = {"mcp_requests": 0, "with_authorization": 0}

mcp = FastMCP("mandate-interop-upstream", host="127.0.0.1")


@mcp.tool()
def add(a: int, b: int) -> int:
    """Adds two integers."""
    CALLS["add"] += 1
    return a + b


@mcp.tool()
async def slow_count(n: int, ctx: Context, delay_ms: int = 200) -> str:
    """Counts to n slowly, reporting progress at every step."""
    CALLS["slow_count"] += 1
    for i in range(1, n + 1):
        await asyncio.sleep(delay_ms / 1000)
        await ctx.report_progress(i, n, f"step {i} of {n}")
        await ctx.info(f"counted {i}")
    return f"counted to {n}"


@mcp.tool()
def delete_everything(confirm: bool = False) -> str:
    """Deletes everything (it does not, but a policy should think it might)."""
    CALLS["delete_everything"] += 1
    return "deleted everything" if confirm else "nothing deleted"


@mcp.custom_route("/calls", methods=["GET"])
async def calls(_request: Request) -> JSONResponse:
    return JSONResponse({"tools": CALLS, **HTTP})


def counting(app):
    """Counts the requests to /mcp and those carrying an Authorization header."""

    async def wrapped(scope, receive, send):
        if scope["type"] == "http" and scope["path"].startswith("/mcp"):
            HTTP["mcp_requests"] += 1
            if any(k.lower() == b"authorization" for k, _ in scope["headers"]):
                HTTP["with_authorization"] += 1
        await app(scope, receive, send)

    return wrapped


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", args.port))
    sock.listen(128)  # connections queue from now on, before uvicorn accepts them
    port = sock.getsockname()[1]

    app = counting(mcp.streamable_http_app())
    config = uvicorn.Config(app, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    print(
        json.dumps(
            {
                "url": f"http://127.0.0.1:{port}/mcp",
                "calls": f"http://127.0.0.1:{port}/calls",
            }
        ),
        flush=True,
    )
    await server.serve(sockets=[sock])


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
