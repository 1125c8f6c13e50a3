"""Python `requests` against Mandate over TLS (crates/mandate/tests/e2e/tls.rs).

It verifies the server's certificate against the test's CA (`verify=TLS_CA`), reads the
RFC 8414 metadata (every URL `https://`), gets a token with `client_secret_basic` and a
decision from `/v1/authorize`; trusting another CA (`TLS_WRONG_CA`) it is refused before
anything is sent. Prints `done` at the end; any failed check exits non-zero.
"""

import os
import sys

import requests

ADDR = os.environ["MANDATE_ADDR"].rstrip("/")
CA = os.environ["TLS_CA"]
WRONG_CA = os.environ["TLS_WRONG_CA"]
AGENT = os.environ["DEMO_AGENT"]
SECRET = os.environ["DEMO_SECRET"]
TIMEOUT = 30
ALLOWED = {
    "action": "crm:read",
    "context": {"data_class": "internal"},
    "resource": {"type": "Crm::Contact", "id": "c42", "attributes": {"team": "sales"}},
}

assert ADDR.startswith("https://"), ADDR
meta = requests.get(
    f"{ADDR}/.well-known/oauth-authorization-server", verify=CA, timeout=TIMEOUT
)
meta.raise_for_status()
meta = meta.json()
for key in ("issuer", "token_endpoint", "jwks_uri", "introspection_endpoint"):
    assert meta[key].startswith("https://"), (key, meta[key])
print("metadata: issuer", meta["issuer"])

token = requests.post(
    meta["token_endpoint"],
    auth=(AGENT, SECRET),
    data={"grant_type": "client_credentials"},
    verify=CA,
    timeout=TIMEOUT,
)
assert token.status_code == 200, token.text
access = token.json()["access_token"]
print("token: issued")

decision = requests.post(
    f"{ADDR}/v1/authorize",
    headers={"Authorization": f"Bearer {access}"},
    json=ALLOWED,
    verify=CA,
    timeout=TIMEOUT,
)
assert decision.status_code == 200, decision.text
assert decision.json()["decision"] == "allow", decision.text
print("decision: allow")

try:
    requests.get(f"{ADDR}/.well-known/jwks.json", verify=WRONG_CA, timeout=TIMEOUT)
except requests.exceptions.SSLError as e:
    print("another CA: refused,", type(e).__name__)
else:
    sys.exit("a client trusting another CA was not refused")
print("done")
