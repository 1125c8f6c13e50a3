#!/usr/bin/env python3
"""Mandate with `token.signing_alg = "Ed25519"` (RFC 9864) against joserfc and authlib.

Reads MANDATE_ADDR and MANDATE_TOKEN (an admin token) like oauth_clients.py. The server
must run with MANDATE_TOKEN_SIGNING_ALG=Ed25519. Checks that:
- the JWKS publishes its keys with `alg: Ed25519`;
- joserfc verifies an access token authlib got (client_secret_basic) against that JWKS,
  with every joserfc SecurityWarning turned into an error (joserfc warns on "EdDSA",
  which RFC 9864 deprecates for JOSE), and its claims registry accepts iss/aud/exp;
- a client assertion joserfc signs with `alg: Ed25519` gets a token, and a refused one
  shows the client its error_description.

Prints one line per check and exits non-zero on the first failure.
"""

import time
import uuid
import warnings

from common import ADDR, ASSERTION_TYPE, CRM, TIMEOUT, CheckFailed, api, check, ok, register_agent, run

import requests
from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.requests_client import OAuth2Session
from joserfc import jwt
from joserfc.errors import SecurityWarning
from joserfc.jwk import KeySet, OKPKey

# No joserfc SecurityWarning may be raised by anything below.
warnings.simplefilter("error", SecurityWarning)

def token_request(assertion):
    return requests.post(
        META["token_endpoint"],
        data={"grant_type": "client_credentials", "client_assertion_type": ASSERTION_TYPE, "client_assertion": assertion},
        timeout=TIMEOUT,
    )


def main():
    global META
    META = requests.get(ADDR + "/.well-known/oauth-authorization-server", timeout=TIMEOUT).json()
    jwks = requests.get(META["jwks_uri"], timeout=TIMEOUT).json()
    check(jwks["keys"] and all(k.get("alg") == "Ed25519" for k in jwks["keys"]), f"JWKS algs: {jwks}")
    keys = KeySet.import_key_set(jwks)
    ok(f"jwks: {len(jwks['keys'])} key(s) published with alg Ed25519; joserfc imports them")

    # An access token via authlib, verified by joserfc without a SecurityWarning.
    agent = register_agent("joserfc-secret", [CRM])
    secret = api("POST", f"/v1/agents/{agent}/credentials", {"type": "client_secret"})["client_secret"]
    session = OAuth2Session(agent, secret, token_endpoint_auth_method="client_secret_basic")
    tok = session.fetch_token(META["token_endpoint"], grant_type="client_credentials", resource=CRM, timeout=TIMEOUT)
    decoded = jwt.decode(tok["access_token"], keys, algorithms=["Ed25519"])
    check(decoded.header.get("alg") == "Ed25519", f"header alg {decoded.header.get('alg')!r}")
    check(decoded.header.get("typ") == "at+jwt", f"header typ {decoded.header.get('typ')!r}")
    registry = jwt.JWTClaimsRegistry(
        iss={"essential": True, "value": META["issuer"]},
        aud={"essential": True, "value": CRM},
        sub={"essential": True, "value": agent},
        exp={"essential": True},
        jti={"essential": True},
    )
    registry.validate(decoded.claims)
    try:
        jwt.JWTClaimsRegistry(aud={"essential": True, "value": "https://elsewhere.example"}).validate(decoded.claims)
    except Exception:  # joserfc's InvalidClaimError
        pass
    else:
        raise CheckFailed("joserfc accepted a foreign audience")
    ok("access token: joserfc verifies it (alg Ed25519, typ at+jwt, iss, aud, sub, exp) with no SecurityWarning")

    # A client assertion signed by joserfc with alg Ed25519.
    key_agent = register_agent("joserfc-key", [CRM])
    private = OKPKey.generate_key("Ed25519")
    public = private.as_dict(private=False)
    api("POST", f"/v1/agents/{key_agent}/credentials", {"type": "public_key", "jwk": {"kty": "OKP", "crv": "Ed25519", "x": public["x"], "alg": "Ed25519"}})

    def assertion(aud, exp_in=120):
        now = int(time.time())
        claims = {"iss": key_agent, "sub": key_agent, "aud": aud, "iat": now, "exp": now + exp_in, "jti": str(uuid.uuid4())}
        return jwt.encode({"alg": "Ed25519"}, claims, private, algorithms=["Ed25519"])

    res = token_request(assertion(META["token_endpoint"]))
    check(res.status_code == 200, f"Ed25519 assertion: HTTP {res.status_code}: {res.text}")
    jwt.decode(res.json()["access_token"], keys, algorithms=["Ed25519"])
    ok("private_key_jwt: a joserfc assertion with alg Ed25519 gets a token joserfc verifies")

    # Refusals say why to the holder of the key.
    res = token_request(assertion("https://elsewhere.example/oauth/token"))
    body = res.json()
    check(res.status_code == 401 and body.get("error") == "invalid_client", f"wrong aud: HTTP {res.status_code}: {res.text}")
    check("aud" in body.get("error_description", ""), f"wrong aud: {res.text}")
    res = token_request(assertion(META["token_endpoint"], exp_in=-300))
    check("expired" in res.json().get("error_description", ""), f"expired: {res.text}")
    ok(f"refusals: wrong aud -> {body['error_description']!r}; expired -> {res.json()['error_description']!r}")

    # The same refusal through authlib, which shows the error_description to its caller.
    def raw_key_session():
        from authlib.oauth2.rfc7523 import PrivateKeyJWT

        return OAuth2Session(
            key_agent,
            private,
            token_endpoint_auth_method=PrivateKeyJWT("https://elsewhere.example/oauth/token", alg="Ed25519"),
        )

    try:
        raw_key_session().fetch_token(META["token_endpoint"], grant_type="client_credentials", timeout=TIMEOUT)
    except OAuthError as e:
        check(e.error == "invalid_client" and "aud" in (e.description or ""), f"authlib: {e.error} {e.description!r}")
        ok(f"authlib surfaces the refusal: {e.error}: {e.description}")
    else:
        raise CheckFailed("authlib got a token with a wrong aud")


if __name__ == "__main__":
    run(main, "all joserfc checks passed")
