// openid-client (v6) against Mandate's token endpoint, by discovery from the issuer URL:
// client credentials with `ClientSecretBasic`, and with `PrivateKeyJwt` for a P-256 key
// and an Ed25519 key (openid-client signs with the fully-specified `alg: "Ed25519"`,
// RFC 9864; one more run rewrites that header to the older `EdDSA` with the library's
// `modifyAssertion` hook, so both spellings are exercised). Every access token is then
// verified with jose's `jwtVerify` against the JWKS the metadata names
// (`createRemoteJWKSet`).
//
// Mandate is an OAuth 2.0 authorization server, not an OpenID Provider: discovery uses
// RFC 8414 (`algorithm: "oauth2"`), and `allowInsecureRequests` because the test server
// listens on plain HTTP on loopback.
//
// Environment: MANDATE_ISSUER, CLIENT_ID, CLIENT_SECRET, ES256_JWK and ED25519_JWK
// (private JWKs whose public halves are registered for CLIENT_ID), TOKEN_ALG (the `alg`
// Mandate's access tokens must carry: `EdDSA`, or `Ed25519` with `token.signing_alg`).
// Prints `ok <check>` or `FAIL <check>: <why>` per check, then `all <n> checks passed`;
// exits 1 on any failure.

import { createRemoteJWKSet, decodeProtectedHeader, generateKeyPair, importJWK, jwtVerify } from 'jose';
import {
  ClientSecretBasic,
  PrivateKeyJwt,
  allowInsecureRequests,
  clientCredentialsGrant,
  customFetch,
  discovery,
  modifyAssertion,
} from 'openid-client';

import { Checks, env } from './checks.mjs';

const issuer = env('MANDATE_ISSUER');
const clientId = env('CLIENT_ID');
const tokenAlg = env('TOKEN_ALG');
const checks = new Checks();

/** The client assertions each run sent, to show which `alg` went over the wire. */
const sent = [];
const logged = async (url, init) => {
  const body = init?.body;
  if (body instanceof URLSearchParams && body.has('client_assertion')) sent.push(body.get('client_assertion'));
  return fetch(url, init);
};

const es256 = await importJWK(JSON.parse(env('ES256_JWK')), 'ES256');
const ed25519 = await importJWK(JSON.parse(env('ED25519_JWK')), 'Ed25519');
const asEdDSA = { [modifyAssertion]: (header) => Object.assign(header, { alg: 'EdDSA' }) };

const runs = [
  ['client_secret_basic', ClientSecretBasic(env('CLIENT_SECRET')), undefined],
  ['private_key_jwt P-256', PrivateKeyJwt(es256), 'ES256'],
  ['private_key_jwt Ed25519', PrivateKeyJwt(ed25519), 'Ed25519'],
  ['private_key_jwt Ed25519 as EdDSA', PrivateKeyJwt(ed25519, asEdDSA), 'EdDSA'],
];

for (const [name, auth, alg] of runs) {
  sent.length = 0;
  let config;
  const found = await checks.run(`${name}: discovery from the issuer URL`, async () => {
    config = await discovery(new URL(issuer), clientId, undefined, auth, {
      algorithm: 'oauth2',
      execute: [allowInsecureRequests],
      [customFetch]: logged,
    });
    const meta = config.serverMetadata();
    if (meta.issuer !== issuer) throw new Error(`issuer ${meta.issuer}`);
    if (!meta.token_endpoint) throw new Error('no token_endpoint');
  });
  if (!found) continue;
  let token;
  const granted = await checks.run(`${name}: client credentials grant`, async () => {
    const r = await clientCredentialsGrant(config, {});
    token = r.access_token;
    if (r.token_type?.toLowerCase() !== 'bearer') throw new Error(`token_type ${r.token_type}`);
    if (!(r.expires_in > 0)) throw new Error(`expires_in ${r.expires_in}`);
  });
  if (alg !== undefined) {
    await checks.run(`${name}: the assertion was signed with alg ${alg}`, async () => {
      if (sent.length !== 1) throw new Error(`${sent.length} assertions sent`);
      const header = decodeProtectedHeader(sent[0]);
      if (header.alg !== alg) throw new Error(`header ${JSON.stringify(header)}`);
    });
  }
  if (!granted) continue;
  await checks.run(`${name}: the token verifies against the JWKS`, async () => {
    const jwks = createRemoteJWKSet(new URL(config.serverMetadata().jwks_uri));
    const { payload, protectedHeader } = await jwtVerify(token, jwks, {
      issuer,
      typ: 'at+jwt',
      algorithms: [tokenAlg],
    });
    if (payload.sub !== clientId) throw new Error(`sub ${payload.sub}`);
    if (payload.client_id !== clientId) throw new Error(`client_id ${payload.client_id}`);
    checks.note(`${name}: token alg ${protectedHeader.alg}, kid ${protectedHeader.kid}`);
  });
}

// A key Mandate does not know: refused as a client, not an error of the server.
await checks.run('an unregistered Ed25519 key is refused with invalid_client', async () => {
  const { privateKey } = await generateKeyPair('Ed25519');
  const config = await discovery(new URL(issuer), clientId, undefined, PrivateKeyJwt(privateKey), {
    algorithm: 'oauth2',
    execute: [allowInsecureRequests],
  });
  let e;
  try {
    await clientCredentialsGrant(config, {});
  } catch (err) {
    e = err;
  }
  if (e === undefined) throw new Error('a token was issued');
  // openid-client reports a 401 with a challenge as WWWAuthenticateChallengeError, whose
  // response still holds the body; any other refusal as ResponseBodyError with `error`.
  const body = e.response instanceof Response ? await e.response.json().catch(() => ({})) : {};
  const error = e.error ?? body.error;
  if (e.status !== 401 || error !== 'invalid_client') {
    throw new Error(`HTTP ${e.status}, error ${error}: ${e.message}`);
  }
});

checks.finish();
