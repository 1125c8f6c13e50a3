// Node's built-in `fetch` against Mandate over TLS (crates/mandate/tests/e2e/tls.rs):
// the CA is given the way Node is told of a private CA, `NODE_EXTRA_CA_CERTS`.
// `node tls_fetch.mjs ok`: the RFC 8414 metadata is all `https://`, a token by
// `client_secret_basic`, an `allow` from `/v1/authorize`. `node tls_fetch.mjs refused`
// (run with another CA): the first request fails at the certificate. Prints `done`.
const addr = process.env.MANDATE_ADDR.replace(/\/$/, "");
const mode = process.argv[2];

function check(ok, what) {
  if (!ok) {
    console.error(`failed: ${what}`);
    process.exit(1);
  }
}

if (mode === "refused") {
  try {
    await fetch(`${addr}/.well-known/jwks.json`);
  } catch (e) {
    console.log(`another CA: refused, ${e.cause?.code ?? e.message}`);
    console.log("done");
    process.exit(0);
  }
  check(false, "a client trusting another CA was not refused");
}

check(addr.startsWith("https://"), `address ${addr}`);
const meta = await (await fetch(`${addr}/.well-known/oauth-authorization-server`)).json();
for (const key of ["issuer", "token_endpoint", "jwks_uri", "introspection_endpoint"]) {
  check(meta[key].startsWith("https://"), `${key} ${meta[key]}`);
}
console.log(`metadata: issuer ${meta.issuer}`);

const basic = Buffer.from(`${process.env.DEMO_AGENT}:${process.env.DEMO_SECRET}`).toString(
  "base64",
);
const token = await fetch(meta.token_endpoint, {
  method: "POST",
  headers: {
    authorization: `Basic ${basic}`,
    "content-type": "application/x-www-form-urlencoded",
  },
  body: "grant_type=client_credentials",
});
check(token.status === 200, `token ${token.status}`);
const access = (await token.json()).access_token;
console.log("token: issued");

const decision = await fetch(`${addr}/v1/authorize`, {
  method: "POST",
  headers: { authorization: `Bearer ${access}`, "content-type": "application/json" },
  body: JSON.stringify({
    action: "crm:read",
    context: { data_class: "internal" },
    resource: { type: "Crm::Contact", id: "c42", attributes: { team: "sales" } },
  }),
});
const body = await decision.json();
check(decision.status === 200 && body.decision === "allow", JSON.stringify(body));
console.log("decision: allow");
console.log("done");
