"""Python `requests` authenticating to Mandate with client certificates (RFC 8705 §2)
over real TLS (crates/mandate/tests/e2e/tls.rs).

`requests` presents the certificate (`cert=(crt, key)`) and sends only `client_id`:
- PKI (`tls_client_auth`): a certificate of the client CA whose URI SAN the agent's
  credential names gets a token bound to it (`cnf.x5t#S256` is the SHA-256 of the DER
  this script computes itself), which decides `allow` over the same certificate and is
  refused without it;
- self-signed (`self_signed_tls_client_auth`): the certificate registered in the agent's
  JWK `x5c` gets a token;
- another CA's certificate of the same name is refused (`invalid_client`,
  `client_certificate_untrusted`), as is the right certificate for another client.
Prints `done` at the end; any failed check exits non-zero.
"""

import base64
import hashlib
import json
import os
import ssl

import requests

ADDR = os.environ["MANDATE_ADDR"].rstrip("/")
CA = os.environ["TLS_CA"]
AGENT = os.environ["PKI_AGENT"]
SELF_AGENT = os.environ["SELF_AGENT"]
PKI = (os.environ["PKI_CERT"], os.environ["PKI_KEY"])
SELF = (os.environ["SELF_CERT"], os.environ["SELF_KEY"])
STRANGER = (os.environ["STRANGER_CERT"], os.environ["STRANGER_KEY"])
TIMEOUT = 30
ALLOWED = {
    "action": "crm:read",
    "context": {"data_class": "internal"},
    "resource": {"type": "Crm::Contact", "id": "c42", "attributes": {"team": "sales"}},
}


def thumbprint(pem_file):
    with open(pem_file) as f:
        der = ssl.PEM_cert_to_DER_cert(f.read())
    return base64.urlsafe_b64encode(hashlib.sha256(der).digest()).rstrip(b"=").decode()


def claims(jwt):
    body = jwt.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))


def token(client_id, cert):
    return requests.post(
        f"{ADDR}/oauth/token",
        data={"grant_type": "client_credentials", "client_id": client_id},
        cert=cert,
        verify=CA,
        timeout=TIMEOUT,
    )


meta = requests.get(
    f"{ADDR}/.well-known/oauth-authorization-server", verify=CA, timeout=TIMEOUT
).json()
methods = meta["token_endpoint_auth_methods_supported"]
assert "tls_client_auth" in methods and "self_signed_tls_client_auth" in methods, methods
assert meta["tls_client_certificate_bound_access_tokens"] is True, meta

r = token(AGENT, PKI)
assert r.status_code == 200, r.text
access = r.json()["access_token"]
assert r.json()["token_type"] == "Bearer", r.text
assert claims(access)["cnf"] == {"x5t#S256": thumbprint(PKI[0])}, claims(access)
print("tls_client_auth: token bound to the certificate")

decide = lambda cert: requests.post(  # noqa: E731
    f"{ADDR}/v1/authorize",
    headers={"Authorization": f"Bearer {access}"},
    json=ALLOWED,
    cert=cert,
    verify=CA,
    timeout=TIMEOUT,
)
d = decide(PKI)
assert d.status_code == 200 and d.json()["decision"] == "allow", d.text
d = decide(None)
assert d.status_code == 401, d.text
assert d.json()["reason"] == "certificate_bound_token_without_certificate", d.text
print("decision: allow with the certificate, refused without")

r = token(SELF_AGENT, SELF)
assert r.status_code == 200, r.text
assert claims(r.json()["access_token"])["cnf"] == {"x5t#S256": thumbprint(SELF[0])}
print("self_signed_tls_client_auth: token")

r = token(AGENT, STRANGER)
assert r.status_code == 401 and r.json()["error"] == "invalid_client", r.text
assert "client_certificate_untrusted" in r.json()["error_description"], r.text
r = token(SELF_AGENT, PKI)
assert r.status_code == 401 and r.json()["error"] == "invalid_client", r.text
r = token(AGENT, None)
assert r.status_code == 401 and r.json()["error"] == "invalid_client", r.text
print("refused: another CA, another client's certificate, no certificate")
print("done")
