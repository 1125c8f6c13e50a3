"""A real MCP client (the official `mcp` SDK: `streamablehttp_client` + `ClientSession`)
for the MCP gateway's end-to-end test. It connects to URL with a bearer token, lists the
tools, makes the calls it is given one after the other and prints one JSON report on
stdout for the Rust test to assert on.

Usage: mcp_client.py URL [--call NAME ARGS_JSON]...
The token comes from the environment variable MCP_TOKEN (not argv, so it is not in the
process list); without it no Authorization header is sent.

Or the SDK gets its own token: with MCP_CLIENT_ID and MCP_CLIENT_SECRET, through its
`ClientCredentialsOAuthProvider`; with MCP_CLIENT_ID and MCP_CLIENT_KEY (a PKCS#8 PEM
private key; MCP_CLIENT_KEY_ALG, default EdDSA), through its `PrivateKeyJWTOAuthProvider`
signing its own assertions (`SignedJWTParameters`). Either is given nothing but the URL
and the credentials: it must find the authorization server from the 401's RFC 9728
metadata and RFC 8414 discovery. The report then has "oauth": what the provider
discovered and whether it holds a token (also next to a "connect_error").

Report:
  {"protocol_version": "...", "server_info": {...}, "session_id": "...",
   "tools": ["name", ...],
   "server_requests": ["elicitation/create", ...],
   "calls": [{"name": ..., "arguments": {...}, "elapsed": seconds,
              "ok": true, "is_error": false, "text": ["..."], "structured": ...,
              "progress": [{"progress": 1, "total": 3, "message": "...", "t": s}],
              "logs": ["..."]}
             | {"name": ..., "ok": false, "error": {"code": -32003, "message": ...,
                "data": {...}}}]}
or, when the session cannot be set up at all (e.g. 401):
  {"connect_error": "..."}
Progress and log times `t` are seconds since the call was sent, so a test can tell a
streamed response (first progress well before `elapsed`) from a buffered one.
`server_requests` lists every request the server side sent this client (sampling,
elicitation, roots): each is refused, and through Mandate's gateway none may arrive.
"""

import argparse
import asyncio
import json
import os
import sys
import time

from mcp import ClientSession, types
from mcp.client.streamable_http import streamablehttp_client
from mcp.shared.exceptions import McpError


class MemoryStorage:
    """The SDK's `TokenStorage`, in memory."""

    def __init__(self):
        self.tokens = None
        self.client_info = None

    async def get_tokens(self):
        return self.tokens

    async def set_tokens(self, tokens) -> None:
        self.tokens = tokens

    async def get_client_info(self):
        return self.client_info

    async def set_client_info(self, client_info) -> None:
        self.client_info = client_info


def oauth_provider(url: str):
    """The SDK's own OAuth provider for the credentials in the environment, or None."""
    client_id = os.environ.get("MCP_CLIENT_ID")
    if not client_id:
        return None
    from mcp.client.auth.extensions.client_credentials import (
        ClientCredentialsOAuthProvider,
        PrivateKeyJWTOAuthProvider,
        SignedJWTParameters,
    )

    secret = os.environ.get("MCP_CLIENT_SECRET")
    if secret:
        return ClientCredentialsOAuthProvider(
            server_url=url,
            storage=MemoryStorage(),
            client_id=client_id,
            client_secret=secret,
        )
    params = SignedJWTParameters(
        issuer=client_id,
        subject=client_id,
        signing_key=os.environ["MCP_CLIENT_KEY"],
        signing_algorithm=os.environ.get("MCP_CLIENT_KEY_ALG", "EdDSA"),
    )
    return PrivateKeyJWTOAuthProvider(
        server_url=url,
        storage=MemoryStorage(),
        client_id=client_id,
        assertion_provider=params.create_assertion_provider(),
    )


def oauth_report(provider) -> dict:
    """What the provider discovered, and whether it holds a token."""
    ctx = provider.context
    prm = ctx.protected_resource_metadata
    asm = ctx.oauth_metadata
    return {
        "resource": str(prm.resource) if prm else None,
        "authorization_server": ctx.auth_server_url,
        "issuer": str(asm.issuer) if asm else None,
        "token_endpoint": str(asm.token_endpoint) if asm else None,
        "scope": ctx.client_metadata.scope,
        "has_token": ctx.current_tokens is not None,
    }


PROVIDER = None


def describe(exc: BaseException) -> str:
    """Flattens exception groups into one line."""
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(describe(e) for e in exc.exceptions)
    return f"{type(exc).__name__}: {exc}"


async def run(url: str, calls: list[tuple[str, dict]]) -> dict:
    token = os.environ.get("MCP_TOKEN")
    headers = {"Authorization": f"Bearer {token}"} if token else None
    report: dict = {"calls": [], "server_requests": []}
    current: dict = {}

    async def on_log(params) -> None:
        current.setdefault("logs", []).append(str(params.data))

    def refuse(method: str):
        async def callback(_context, _params=None) -> types.ErrorData:
            report["server_requests"].append(method)
            return types.ErrorData(code=-32601, message=f"{method} refused by the test client")

        return callback

    async with streamablehttp_client(url, headers=headers, timeout=30, auth=PROVIDER) as (
        read,
        write,
        get_session_id,
    ):
        async with ClientSession(
            read,
            write,
            logging_callback=on_log,
            sampling_callback=refuse("sampling/createMessage"),
            elicitation_callback=refuse("elicitation/create"),
            list_roots_callback=refuse("roots/list"),
        ) as session:
            init = await session.initialize()
            report["protocol_version"] = init.protocolVersion
            report["server_info"] = init.serverInfo.model_dump(mode="json")
            report["capabilities"] = init.capabilities.model_dump(
                mode="json", exclude_none=True
            )
            report["session_id"] = get_session_id()

            listed = await session.list_tools()
            report["tools"] = [t.name for t in listed.tools]

            for name, arguments in calls:
                current.clear()
                entry: dict = {"name": name, "arguments": arguments, "progress": []}
                start = time.monotonic()

                async def on_progress(progress, total, message, entry=entry, start=start):
                    entry["progress"].append(
                        {
                            "progress": progress,
                            "total": total,
                            "message": message,
                            "t": round(time.monotonic() - start, 3),
                        }
                    )

                try:
                    result = await session.call_tool(
                        name, arguments, progress_callback=on_progress
                    )
                    entry["ok"] = True
                    entry["is_error"] = result.isError
                    entry["text"] = [
                        c.text for c in result.content if getattr(c, "type", "") == "text"
                    ]
                    entry["structured"] = result.structuredContent
                except McpError as e:
                    entry["ok"] = False
                    entry["error"] = {
                        "code": e.error.code,
                        "message": e.error.message,
                        "data": e.error.data,
                    }
                entry["elapsed"] = round(time.monotonic() - start, 3)
                entry["logs"] = list(current.get("logs", []))
                report["calls"].append(entry)
    return report


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument(
        "--call",
        nargs=2,
        action="append",
        default=[],
        metavar=("NAME", "ARGS_JSON"),
        help="a tool to call and its arguments as a JSON object",
    )
    args = parser.parse_args()
    calls = [(name, json.loads(arguments)) for name, arguments in args.call]
    global PROVIDER
    PROVIDER = oauth_provider(args.url)
    try:
        report = asyncio.run(asyncio.wait_for(run(args.url, calls), timeout=60))
    except BaseException as e:  # noqa: BLE001 - reported, the test decides
        report = {"connect_error": describe(e)}
    if PROVIDER is not None:
        report["oauth"] = oauth_report(PROVIDER)
    print(json.dumps(report), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
