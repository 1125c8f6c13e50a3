"""DPoP (RFC 9449) with an independent implementation: proofs made here with `cryptography`
(Ed25519 and P-256 keys, the JWS assembled by hand from RFC 7515 and RFC 9449 §4.2), the
JWK thumbprint computed here by RFC 7638. Run by crates/mandate/tests/e2e/interop.rs
against a running server (MANDATE_ADDR, MANDATE_TOKEN) with a gateway (MANDATE_GATEWAY,
route /crm).

Checks: a token request with a proof gets `token_type: DPoP` and `cnf.jkt` equal to the
thumbprint computed here; /v1/authorize and the HTTP gateway accept the bound token with
a proof; a replayed proof, a wrong htm, a wrong htu and the bound token presented as
Bearer are each refused with 401 and a DPoP challenge.
"""

import base64
import hashlib
import json
import os
import time
import uuid

import requests
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from common import ADDR, TIMEOUT, api, check, ok, run

GATEWAY = os.environ["MANDATE_GATEWAY"].rstrip("/")


def b64url(raw):
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


class Key:
    """A DPoP key: Ed25519 (alg EdDSA) or P-256 (alg ES256)."""

    def __init__(self, kind):
        self.kind = kind
        if kind == "ed25519":
            self.sk = ed25519.Ed25519PrivateKey.generate()
            x = self.sk.public_key().public_bytes_raw()
            self.jwk = {"kty": "OKP", "crv": "Ed25519", "x": b64url(x)}
            self.alg = "EdDSA"
        else:
            self.sk = ec.generate_private_key(ec.SECP256R1())
            n = self.sk.public_key().public_numbers()
            self.jwk = {"kty": "EC", "crv": "P-256",
                        "x": b64url(n.x.to_bytes(32, "big")), "y": b64url(n.y.to_bytes(32, "big"))}
            self.alg = "ES256"

    def thumbprint(self):
        # RFC 7638 §3: the required members, lexicographic order, no whitespace.
        members = sorted(k for k in self.jwk)
        canon = json.dumps({k: self.jwk[k] for k in members}, separators=(",", ":"), sort_keys=True)
        return b64url(hashlib.sha256(canon.encode()).digest())

    def sign(self, data):
        if self.kind == "ed25519":
            return self.sk.sign(data)
        r, s = decode_dss_signature(self.sk.sign(data, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")

    def proof(self, htm, htu, token=None, iat=None):
        header = {"typ": "dpop+jwt", "alg": self.alg, "jwk": self.jwk}
        claims = {"jti": str(uuid.uuid4()), "htm": htm, "htu": htu,
                  "iat": int(time.time()) if iat is None else iat}
        if token is not None:
            claims["ath"] = b64url(hashlib.sha256(token.encode()).digest())
        signing_input = b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(claims).encode())
        return signing_input + "." + b64url(self.sign(signing_input.encode()))


def bound_token(agent, secret, key, resource=None):
    proof = key.proof("POST", ADDR + "/oauth/token")
    form = {"grant_type": "client_credentials"}
    if resource:
        form["resource"] = resource
    res = requests.post(ADDR + "/oauth/token", data=form, auth=(agent, secret),
                        headers={"DPoP": proof}, timeout=TIMEOUT)
    check(res.status_code == 200, f"token request: HTTP {res.status_code}: {res.text}")
    body = res.json()
    check(body["token_type"] == "DPoP", f"token_type {body['token_type']}")
    token = body["access_token"]
    payload = token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    check(claims.get("cnf", {}).get("jkt") == key.thumbprint(),
          f"cnf.jkt {claims.get('cnf')} is not the RFC 7638 thumbprint {key.thumbprint()}")
    return token


def refused(res, reason, what):
    check(res.status_code == 401, f"{what}: HTTP {res.status_code}: {res.text}")
    challenge = res.headers.get("WWW-Authenticate", "")
    check(challenge.startswith("DPoP"), f"{what}: challenge {challenge!r}")
    check(reason in res.text or reason in challenge, f"{what}: reason {reason} not in {res.text}")
    ok(f"{what}: refused ({reason})")


QUESTION = {"action": "crm:read", "resource": {"type": "Crm::Contact", "id": "c-1"},
            "context": {"data_class": "internal"}}


def main():
    meta = requests.get(ADDR + "/.well-known/oauth-authorization-server", timeout=TIMEOUT).json()
    check("ES256" in meta.get("dpop_signing_alg_values_supported", []), "metadata lacks DPoP algs")
    resource = GATEWAY + "/crm"
    boundary = {"grants": [{"actions": ["crm:read"], "resources": ["Crm::Contact/*"],
                            "data_classes": ["internal"]}], "audiences": [resource]}
    agent = api("POST", "/v1/agents", {"name": "dpop-interop", "owner": "interop@example.com",
                                       "boundary": boundary})["id"]
    secret = api("POST", f"/v1/agents/{agent}/credentials", {"type": "client_secret"})["client_secret"]

    for kind in ("ed25519", "p256"):
        key = Key(kind)
        token = bound_token(agent, secret, key)
        ok(f"{kind}: bound token, cnf.jkt is the RFC 7638 thumbprint")
        url = ADDR + "/v1/authorize"
        proof = key.proof("POST", url, token)
        headers = {"Authorization": f"DPoP {token}", "DPoP": proof}
        res = requests.post(url, json=QUESTION, headers=headers, timeout=TIMEOUT)
        check(res.status_code == 200, f"{kind}: /v1/authorize: HTTP {res.status_code}: {res.text}")
        check(res.json()["decision"] == "allow", f"{kind}: decision {res.json()}")
        ok(f"{kind}: /v1/authorize with a proof: allow")
        res = requests.post(url, json=QUESTION, headers=headers, timeout=TIMEOUT)
        refused(res, "dpop_replayed", f"{kind}: replayed proof")
        res = requests.post(url, json=QUESTION, timeout=TIMEOUT, headers={
            "Authorization": f"DPoP {token}", "DPoP": key.proof("GET", url, token)})
        refused(res, "dpop_htm", f"{kind}: wrong htm")
        res = requests.post(url, json=QUESTION, timeout=TIMEOUT, headers={
            "Authorization": f"DPoP {token}", "DPoP": key.proof("POST", ADDR + "/v1/authorize/batch", token)})
        refused(res, "dpop_htu", f"{kind}: wrong htu")
        res = requests.post(url, json=QUESTION, timeout=TIMEOUT, headers={"Authorization": f"Bearer {token}"})
        refused(res, "dpop_bound_token_as_bearer", f"{kind}: bound token as Bearer")

    # The HTTP gateway: the proof names the gateway's public URL.
    key = Key("ed25519")
    token = bound_token(agent, secret, key, resource)
    url = GATEWAY + "/crm/contacts/c-1"
    proof = key.proof("GET", url, token)
    res = requests.get(url, headers={"Authorization": f"DPoP {token}", "DPoP": proof}, timeout=TIMEOUT)
    check(res.status_code == 200, f"gateway: HTTP {res.status_code}: {res.text}")
    ok("gateway: bound token with a proof forwarded")
    res = requests.get(url, headers={"Authorization": f"DPoP {token}", "DPoP": proof}, timeout=TIMEOUT)
    refused(res, "dpop_replayed", "gateway: replayed proof")
    res = requests.get(url, timeout=TIMEOUT, headers={
        "Authorization": f"DPoP {token}", "DPoP": key.proof("GET", ADDR + "/crm/contacts/c-1", token)})
    refused(res, "dpop_htu", "gateway: proof for another URL")
    res = requests.get(url, timeout=TIMEOUT, headers={
        "Authorization": f"DPoP {token}", "DPoP": key.proof("POST", url, token)})
    refused(res, "dpop_htm", "gateway: wrong htm")
    res = requests.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=TIMEOUT)
    refused(res, "dpop_bound_token_as_bearer", "gateway: bound token as Bearer")


if __name__ == "__main__":
    run(main, "all dpop checks passed")
