// Makes the key pairs the interop tests register for an agent: a P-256 key (ES256) and an
// Ed25519 key, as JWKs. Prints one JSON line:
// {"es256": {"private": {...}, "public": {...}}, "ed25519": {...}}.

import { exportJWK, generateKeyPair } from 'jose';

const pair = async (alg) => {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  return { private: await exportJWK(privateKey), public: await exportJWK(publicKey) };
};

process.stdout.write(`${JSON.stringify({ es256: await pair('ES256'), ed25519: await pair('Ed25519') })}\n`);
