// A real MCP tool server written with the official MCP TypeScript SDK (`McpServer` over
// its Streamable HTTP server transport): the upstream behind Mandate's MCP gateway in
// `node_clients.rs`, so that test needs no Python.
//
// Tools:
//   add(a, b)                   -> a + b (as text)
//   delete_everything(confirm)  the call a policy must never let through
//
// Besides /mcp it serves GET /calls (not an MCP tool): how often each tool ran, how many
// HTTP requests reached /mcp and how many of them carried an `Authorization` header (the
// gateway never passes the agent's token on: that count must stay 0).
//
// Usage: node mcp_upstream.mjs. Prints one JSON line {"url": ".../mcp", "calls":
// ".../calls"} on stdout once it listens on 127.0.0.1 (any free port), then serves until
// killed.

import { randomUUID } from 'node:crypto';
import { createServer } from 'node:http';

import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { z } from 'zod';

const calls = { add: 0, delete_everything: 0 };
const http = { mcp_requests: 0, with_authorization: 0 };

/** One McpServer per session, as the SDK's stateful examples do. */
function newServer() {
  const server = new McpServer({ name: 'mandate-interop-node-upstream', version: '1.0.0' });
  server.registerTool(
    'add',
    { description: 'Adds two integers.', inputSchema: { a: z.number().int(), b: z.number().int() } },
    async ({ a, b }) => {
      calls.add += 1;
      return { content: [{ type: 'text', text: String(a + b) }] };
    },
  );
  server.registerTool(
    'delete_everything',
    { description: 'Deletes everything.', inputSchema: { confirm: z.boolean() } },
    async () => {
      calls.delete_everything += 1;
      return { content: [{ type: 'text', text: 'deleted everything' }] };
    },
  );
  return server;
}

/** The open sessions' transports, by session id. */
const sessions = new Map();

async function readJson(req) {
  const chunks = [];
  for await (const c of req) chunks.push(c);
  const text = Buffer.concat(chunks).toString('utf8');
  return text ? JSON.parse(text) : undefined;
}

const httpServer = createServer(async (req, res) => {
  try {
    const path = new URL(req.url, 'http://upstream').pathname;
    if (path === '/calls' && req.method === 'GET') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ tools: calls, ...http }));
      return;
    }
    if (path !== '/mcp') {
      res.writeHead(404).end();
      return;
    }
    http.mcp_requests += 1;
    if (req.headers.authorization !== undefined) http.with_authorization += 1;
    const body = req.method === 'POST' ? await readJson(req) : undefined;
    const sid = req.headers['mcp-session-id'];
    let transport = typeof sid === 'string' ? sessions.get(sid) : undefined;
    if (transport === undefined) {
      if (sid !== undefined || body?.method !== 'initialize') {
        res.writeHead(sid === undefined ? 400 : 404, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ jsonrpc: '2.0', id: null, error: { code: -32000, message: 'no such session' } }));
        return;
      }
      transport = new StreamableHTTPServerTransport({
        sessionIdGenerator: () => randomUUID(),
        onsessioninitialized: (id) => sessions.set(id, transport),
      });
      transport.onclose = () => {
        if (transport.sessionId) sessions.delete(transport.sessionId);
      };
      await newServer().connect(transport);
    }
    await transport.handleRequest(req, res, body);
  } catch (e) {
    process.stderr.write(`upstream: ${e?.stack ?? e}\n`);
    if (!res.headersSent) res.writeHead(500);
    res.end();
  }
});

httpServer.listen(0, '127.0.0.1', () => {
  const { port } = httpServer.address();
  const base = `http://127.0.0.1:${port}`;
  process.stdout.write(`${JSON.stringify({ url: `${base}/mcp`, calls: `${base}/calls` })}\n`);
});
