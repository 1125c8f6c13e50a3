// The official MCP TypeScript SDK against Mandate's MCP gateway, with the SDK's own
// machine-to-machine OAuth providers and nothing else: `Client` over
// `StreamableHTTPClientTransport`, given the gateway URL and the agent's credentials. The
// SDK must find Mandate by itself (the gateway's 401 names its RFC 9728 metadata, which
// names Mandate, whose RFC 8414 metadata names the token endpoint), get a token, list the
// tools, call an allowed one and see a denied one refused.
//
// Three runs, one per provider:
//   client_secret           `ClientCredentialsProvider` (client_secret_basic), no
//                           `expectedIssuer`: nothing but the gateway URL and the secret
//   private_key_jwt ES256   `PrivateKeyJwtProvider` with a P-256 key, with
//                           `expectedIssuer` (the SDK's recommended pinning: the issuer the
//                           gateway's metadata names must be the one configured)
//   private_key_jwt Ed25519 `PrivateKeyJwtProvider` with an Ed25519 key and the
//                           fully-specified `alg: "Ed25519"` (RFC 9864)
//
// Environment: GATEWAY_URL (the gateway's /mcp), MANDATE_ISSUER, CLIENT_ID, CLIENT_SECRET,
// ES256_JWK and ED25519_JWK (private JWKs whose public halves are registered for CLIENT_ID).
// Prints `ok <check>` or `FAIL <check>: <why>` per check, then `all <n> checks passed`;
// exits 1 on any failure.

import { ClientCredentialsProvider, PrivateKeyJwtProvider } from '@modelcontextprotocol/sdk/client/auth-extensions.js';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { decodeJwt, decodeProtectedHeader } from 'jose';

import { Checks, env } from './checks.mjs';

const gateway = env('GATEWAY_URL');
const issuer = env('MANDATE_ISSUER');
const clientId = env('CLIENT_ID');
const checks = new Checks();

const runs = [
  [
    'client_secret',
    () => new ClientCredentialsProvider({ clientId, clientSecret: env('CLIENT_SECRET') }),
    undefined,
  ],
  [
    'private_key_jwt ES256',
    () =>
      new PrivateKeyJwtProvider({
        clientId,
        privateKey: JSON.parse(env('ES256_JWK')),
        algorithm: 'ES256',
        expectedIssuer: issuer,
      }),
    'ES256',
  ],
  [
    'private_key_jwt Ed25519',
    () => new PrivateKeyJwtProvider({ clientId, privateKey: JSON.parse(env('ED25519_JWK')), algorithm: 'Ed25519' }),
    'Ed25519',
  ],
];

for (const [name, makeProvider, alg] of runs) {
  // Every request the SDK makes, in order: proves it discovered Mandate itself.
  const seen = [];
  const assertions = [];
  const logged = async (url, init) => {
    const body = init?.body;
    if (body instanceof URLSearchParams && body.has('client_assertion')) {
      assertions.push(body.get('client_assertion'));
    }
    const res = await fetch(url, init);
    seen.push(`${init?.method ?? 'GET'} ${new URL(String(url)).pathname} ${res.status}`);
    return res;
  };
  const provider = makeProvider();
  const transport = new StreamableHTTPClientTransport(new URL(gateway), { authProvider: provider, fetch: logged });
  const client = new Client({ name: 'mandate-e2e-node', version: '1.0.0' });

  const connected = await checks.run(`${name}: connects through the gateway`, async () => {
    await client.connect(transport);
  });
  if (!connected) {
    checks.note(`${name}: requests made: ${JSON.stringify(seen)}`);
    continue;
  }
  await checks.run(`${name}: discovered Mandate from the gateway's 401`, async () => {
    const want = [
      'POST /mcp 401',
      'GET /.well-known/oauth-protected-resource/mcp 200',
      'GET /.well-known/oauth-authorization-server 200',
      'POST /oauth/token 200',
    ];
    const got = seen.filter((s) => want.includes(s));
    if (JSON.stringify(got) !== JSON.stringify(want)) {
      throw new Error(`requests: ${JSON.stringify(seen)}`);
    }
  });
  await checks.run(`${name}: the token is Mandate's, for the gateway, for this agent`, async () => {
    const token = provider.tokens()?.access_token;
    if (!token) throw new Error('the provider saved no access token');
    const claims = decodeJwt(token);
    const aud = [claims.aud].flat();
    if (claims.iss !== issuer) throw new Error(`iss ${claims.iss}`);
    if (claims.sub !== clientId) throw new Error(`sub ${claims.sub}`);
    if (!aud.includes(gateway)) throw new Error(`aud ${JSON.stringify(claims.aud)}`);
    if (claims.client_id !== clientId) throw new Error(`client_id ${claims.client_id}`);
  });
  if (alg !== undefined) {
    await checks.run(`${name}: the SDK signed its client assertion with alg ${alg}`, async () => {
      if (assertions.length !== 1) throw new Error(`${assertions.length} assertions sent`);
      const header = decodeProtectedHeader(assertions[0]);
      if (header.alg !== alg) throw new Error(`header ${JSON.stringify(header)}`);
    });
  }
  await checks.run(`${name}: tools/list is filtered to the allowed tools`, async () => {
    const { tools } = await client.listTools();
    const names = tools.map((t) => t.name).sort();
    if (JSON.stringify(names) !== JSON.stringify(['demo__add'])) throw new Error(`listed ${JSON.stringify(names)}`);
  });
  await checks.run(`${name}: an allowed tool answers`, async () => {
    const r = await client.callTool({ name: 'demo__add', arguments: { a: 2, b: 40 } });
    if (r.isError || r.content?.[0]?.text !== '42') throw new Error(JSON.stringify(r));
  });
  await checks.run(`${name}: a denied tool is an error`, async () => {
    let r;
    try {
      r = await client.callTool({ name: 'demo__delete_everything', arguments: { confirm: true } });
    } catch (e) {
      if (e?.code !== -32003 || e?.data?.decision !== 'deny') {
        throw new Error(`code ${e?.code}, data ${JSON.stringify(e?.data)}: ${e}`);
      }
      return;
    }
    throw new Error(`the call returned ${JSON.stringify(r)}`);
  });
  await client.close();
}

checks.finish();
