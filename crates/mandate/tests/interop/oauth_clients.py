#!/usr/bin/env python3
"""Mandate against third-party OAuth 2.0 clients: authlib and PyJWT.

Reads MANDATE_ADDR (the server's base URL) and MANDATE_TOKEN (an admin token) from the
environment. Uses the admin API only to register agents, suspend them and introspect;
everything OAuth goes through authlib (token requests, client authentication,
revocation) or PyJWT (JWKS fetch and access-token verification).

Prints one line per check and exits non-zero on the first failure.
"""

import base64
import time
import uuid
import warnings

from common import ADDR, ADMIN, ASSERTION_TYPE, CRM, TIMEOUT, CheckFailed, Spy, api, check, ok, register_agent, run

import jwt  # PyJWT
import requests
from authlib.integrations.requests_client import OAuth2Session
from authlib.integrations.base_client.errors import OAuthError
from authlib.oauth2.rfc7523 import PrivateKeyJWT
from authlib.oauth2.rfc8414 import AuthorizationServerMetadata
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from joserfc.errors import SecurityWarning
from joserfc.jwk import OKPKey

# joserfc (under authlib) warns that the JOSE name "EdDSA" is superseded by "Ed25519"
# (RFC 9864). Mandate accepts "Ed25519" client assertions, so authlib signs with that name
# here and any SecurityWarning is a failure. (Mandate's own tokens say "EdDSA" by default,
# because PyJWT verifies no other name; joserfc_ed25519.py checks joserfc against a server
# configured with token.signing_alg = "Ed25519".)
warnings.simplefilter("error", SecurityWarning)

INVENTORY = "https://inventory.example.com/api"


def b64url(raw):
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def introspect(token):
    res = requests.post(
        META["introspection_endpoint"],
        data={"token": token},
        headers={"Authorization": f"Bearer {ADMIN}"},
        timeout=TIMEOUT,
    )
    check(res.status_code == 200, f"introspection: HTTP {res.status_code}: {res.text}")
    return res.json()


# --- verification with PyJWT -----------------------------------------------------------

def verify_access_token(token, audience, agent, what):
    """Verifies `token` as an RFC 9068 access token with PyJWT against the JWKS."""
    header = jwt.get_unverified_header(token)
    check(header.get("typ") == "at+jwt", f"{what}: header typ is {header.get('typ')!r}, want 'at+jwt'")
    check(header.get("alg") == "EdDSA", f"{what}: header alg is {header.get('alg')!r}")
    signing_key = JWKS.get_signing_key_from_jwt(token)
    claims = jwt.decode(
        token,
        signing_key.key,
        algorithms=["EdDSA"],
        issuer=META["issuer"],
        audience=audience,
        options={"require": ["iss", "sub", "aud", "exp", "iat", "jti"]},
    )
    check(claims["sub"] == agent, f"{what}: sub {claims['sub']!r} != {agent!r}")
    check(claims.get("client_id") == agent, f"{what}: client_id {claims.get('client_id')!r} != {agent!r}")
    check(claims["exp"] > time.time(), f"{what}: already expired")
    # A token for another audience must not verify for this one.
    try:
        jwt.decode(token, signing_key.key, algorithms=["EdDSA"], issuer=META["issuer"], audience="https://elsewhere.example")
    except jwt.InvalidAudienceError:
        pass
    else:
        raise CheckFailed(f"{what}: PyJWT accepted a foreign audience")
    # Nor with a different issuer.
    try:
        jwt.decode(token, signing_key.key, algorithms=["EdDSA"], issuer="https://not-mandate.example", audience=audience)
    except jwt.InvalidIssuerError:
        pass
    else:
        raise CheckFailed(f"{what}: PyJWT accepted a foreign issuer")
    return claims


def expect_oauth_error(fn, error, what):
    try:
        fn()
    except OAuthError as e:
        check(e.error == error, f"{what}: authlib raised {e.error!r} ({e.description}), want {error!r}")
        return e
    raise CheckFailed(f"{what}: authlib returned a token, want error {error!r}")


def main():
    global META, JWKS

    # 1. RFC 8414 discovery.
    res = requests.get(ADDR + "/.well-known/oauth-authorization-server", timeout=TIMEOUT)
    check(res.status_code == 200, f"metadata: HTTP {res.status_code}")
    META = res.json()
    check(META["issuer"] == ADDR, f"metadata issuer {META['issuer']!r} != {ADDR!r}")
    for m in ("client_secret_basic", "client_secret_post", "private_key_jwt"):
        check(m in META["token_endpoint_auth_methods_supported"], f"metadata lacks {m}")
    check("EdDSA" in META["token_endpoint_auth_signing_alg_values_supported"], "metadata lacks EdDSA assertions")
    check("client_credentials" in META["grant_types_supported"], "metadata lacks client_credentials")
    check("Ed25519" in META["token_endpoint_auth_signing_alg_values_supported"], "metadata lacks Ed25519 (RFC 9864) assertions")
    check(META.get("authorization_endpoint") == ADDR + "/oauth/authorize", f"authorization_endpoint {META.get('authorization_endpoint')!r}")
    md = AuthorizationServerMetadata(META)
    # authlib's validator treats an empty `response_types_supported` as missing; Mandate
    # has no authorization flow, so it honestly advertises none (RFC 8414 §2 only asks for
    # a JSON array; the MCP SDKs' schemas accept it). Validate every other field with
    # authlib, `authorization_endpoint` included.
    for key in md.REGISTRY_KEYS:
        if key != "response_types_supported":
            getattr(md, f"validate_{key}")()
    check(isinstance(META.get("response_types_supported"), list), "response_types_supported is not an array")
    ok(f"discovery: RFC 8414 metadata at {ADDR} passes authlib's validator")
    # The authorization endpoint exists for metadata clients, refuses, and never redirects.
    res = requests.get(
        META["authorization_endpoint"],
        params={"response_type": "code", "client_id": "x", "redirect_uri": "https://evil.example/cb", "state": "s"},
        allow_redirects=False,
        timeout=TIMEOUT,
    )
    check(res.status_code == 400 and "Location" not in res.headers, f"authorize: HTTP {res.status_code} {res.headers}")
    check(res.json().get("error") == "unsupported_response_type", f"authorize: {res.text}")
    ok("authorization endpoint: 400 unsupported_response_type, no redirect (RFC 6749 §4.1.2.1)")
    token_endpoint = META["token_endpoint"]
    JWKS = jwt.PyJWKClient(META["jwks_uri"], cache_keys=True, timeout=TIMEOUT)
    keys = JWKS.get_signing_keys()
    check(keys and all(k.algorithm_name == "EdDSA" for k in keys), "JWKS keys are not EdDSA")
    ok(f"jwks: PyJWKClient loads {len(keys)} EdDSA signing key(s) from {META['jwks_uri']}")

    # 2. An agent with a client secret (registered through the admin API).
    secret_agent = register_agent("interop-secret", [CRM, INVENTORY])
    cred = api("POST", f"/v1/agents/{secret_agent}/credentials", {"type": "client_secret"})
    secret = cred["client_secret"]

    # 3. client_secret_basic via authlib, with a resource (RFC 8707) and a scope.
    basic = OAuth2Session(secret_agent, secret, token_endpoint_auth_method="client_secret_basic", scope="crm:read")
    spy = Spy(basic)
    tok = basic.fetch_token(token_endpoint, grant_type="client_credentials", resource=CRM, timeout=TIMEOUT)
    check(spy.last.headers.get("Authorization", "").startswith("Basic "), "authlib did not send Basic credentials")
    check("client_secret" not in spy.body(), "client_secret_basic leaked the secret into the body")
    check(tok["token_type"].lower() == "bearer", f"token_type {tok['token_type']!r}")
    check(tok.get("expires_in", 0) > 0, "no expires_in")
    claims = verify_access_token(tok["access_token"], CRM, secret_agent, "client_secret_basic")
    check(claims.get("scope") == "crm:read", f"scope claim {claims.get('scope')!r}")
    basic_token = tok["access_token"]
    ok("client_secret_basic: authlib gets a token; PyJWT verifies it (EdDSA, JWKS, iss, aud=resource, typ at+jwt)")

    # 4. client_secret_post via authlib, no resource: the audience is the server's default.
    post = OAuth2Session(secret_agent, secret, token_endpoint_auth_method="client_secret_post")
    spy = Spy(post)
    tok = post.fetch_token(token_endpoint, grant_type="client_credentials", timeout=TIMEOUT)
    check("Authorization" not in spy.last.headers, "client_secret_post sent an Authorization header")
    check("client_secret" in spy.body(), "client_secret_post did not post the secret")
    verify_access_token(tok["access_token"], META["issuer"], secret_agent, "client_secret_post")
    ok("client_secret_post: authlib gets a token; PyJWT verifies it with the default audience (the issuer)")

    # 5. A wrong secret is invalid_client, as authlib sees it.
    wrong = OAuth2Session(secret_agent, secret[:-2] + ("AA" if not secret.endswith("AA") else "BB"))
    expect_oauth_error(lambda: wrong.fetch_token(token_endpoint, grant_type="client_credentials", timeout=TIMEOUT), "invalid_client", "wrong secret")
    ok("wrong secret: authlib raises OAuthError invalid_client")

    # 6. RFC 7009 revocation by authlib (client_secret_basic), seen by introspection.
    check(introspect(basic_token).get("active") is True, "basic token not active before revocation")
    victim = basic.fetch_token(token_endpoint, grant_type="client_credentials", timeout=TIMEOUT)["access_token"]
    res = basic.revoke_token(META["revocation_endpoint"], token=victim, token_type_hint="access_token", timeout=TIMEOUT)
    check(res.status_code == 200, f"revocation: HTTP {res.status_code}: {res.text}")
    check(introspect(victim) == {"active": False}, "revoked token still active")
    check(introspect(basic_token).get("active") is True, "revocation hit another token")
    ok("revocation: authlib revokes a token (RFC 7009); introspection says inactive, others unaffected")

    # 7. An agent with an Ed25519 key generated here; only the public JWK is registered.
    key_agent = register_agent("interop-key", [CRM, INVENTORY])
    private = Ed25519PrivateKey.generate()
    x = b64url(private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw))
    kid = "interop-" + uuid.uuid4().hex[:8]
    public_jwk = {"kty": "OKP", "crv": "Ed25519", "x": x, "kid": kid}
    api("POST", f"/v1/agents/{key_agent}/credentials", {"type": "public_key", "jwk": public_jwk})
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())

    # 8. private_key_jwt via authlib's RFC 7523 client auth (alg Ed25519, RFC 9864, as
    # openid-client signs too; kid in the header).
    def pkjwt_session(signing_pem, header_kid, audience=token_endpoint):
        s = OAuth2Session(
            key_agent,
            OKPKey.import_key(signing_pem),
            token_endpoint_auth_method=PrivateKeyJWT(audience, alg="Ed25519", headers={"kid": header_kid}),
        )
        return s, Spy(s)

    pk, spy = pkjwt_session(pem, kid)
    tok = pk.fetch_token(token_endpoint, grant_type="client_credentials", resource=INVENTORY, timeout=TIMEOUT)
    sent = spy.body()
    check(sent.get("client_assertion_type") == ASSERTION_TYPE, f"assertion type {sent.get('client_assertion_type')!r}")
    check("Authorization" not in spy.last.headers, "private_key_jwt also sent an Authorization header")
    authlib_assertion = sent["client_assertion"]
    check(jwt.get_unverified_header(authlib_assertion).get("alg") == "Ed25519", "authlib did not sign with Ed25519")
    asserted = jwt.decode(authlib_assertion, options={"verify_signature": False})
    verify_access_token(tok["access_token"], INVENTORY, key_agent, "private_key_jwt")
    key_token = tok["access_token"]
    # authlib's own assertion, replayed as is, is refused.
    replayed = requests.post(
        token_endpoint,
        data={
            "grant_type": "client_credentials",
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": authlib_assertion,
        },
        timeout=TIMEOUT,
    )
    check(replayed.status_code == 401 and replayed.json().get("error") == "invalid_client", f"replayed authlib assertion: HTTP {replayed.status_code}: {replayed.text}")
    check("already used" in replayed.json().get("error_description", ""), f"replayed authlib assertion: {replayed.text}")
    # authlib mints a fresh jti per request, so a second request is not a replay.
    tok = pk.fetch_token(token_endpoint, grant_type="client_credentials", timeout=TIMEOUT)
    verify_access_token(tok["access_token"], META["issuer"], key_agent, "private_key_jwt (again)")
    ok(f"private_key_jwt: authlib PrivateKeyJWT(alg=Ed25519, assertion exp-iat={asserted['exp'] - asserted['iat']}s) gets tokens twice; PyJWT verifies them; its assertion replayed is invalid_client 'already used'")

    # 9. An assertion signed by a key Mandate does not know is invalid_client.
    stranger = Ed25519PrivateKey.generate().private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    bad, _ = pkjwt_session(stranger, kid)
    e = expect_oauth_error(lambda: bad.fetch_token(token_endpoint, grant_type="client_credentials", timeout=TIMEOUT), "invalid_client", "unknown signing key")
    check(e.description == "client authentication failed", f"unknown key: description {e.description!r}")
    # ... exactly what an unknown client hears (nothing tells them apart).
    ghost = OAuth2Session(
        "agt_00000000000000000000000000",
        OKPKey.import_key(pem),
        token_endpoint_auth_method=PrivateKeyJWT(token_endpoint, alg="Ed25519", headers={"kid": kid}),
    )
    e = expect_oauth_error(lambda: ghost.fetch_token(token_endpoint, grant_type="client_credentials", timeout=TIMEOUT), "invalid_client", "unknown client")
    check(e.description == "client authentication failed", f"unknown client: description {e.description!r}")
    ok("private_key_jwt with an unregistered key or an unknown client: authlib raises invalid_client, 'client authentication failed' for both")

    # 9b. A refusal the key holder can act on says why, and authlib shows it.
    elsewhere, _ = pkjwt_session(pem, kid, audience="https://elsewhere.example/oauth/token")
    e = expect_oauth_error(lambda: elsewhere.fetch_token(token_endpoint, grant_type="client_credentials", timeout=TIMEOUT), "invalid_client", "wrong audience")
    check("aud" in (e.description or ""), f"wrong audience: description {e.description!r}")
    ok(f"private_key_jwt with a wrong aud: authlib shows error_description {e.description!r}")

    # 10. Replay: one assertion, built by hand with PyJWT, posted twice.
    now = int(time.time())
    assertion = jwt.encode(
        {"iss": key_agent, "sub": key_agent, "aud": token_endpoint, "iat": now, "exp": now + 120, "jti": str(uuid.uuid4())},
        private,
        algorithm="EdDSA",
        headers={"kid": kid},
    )
    form = {
        "grant_type": "client_credentials",
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": assertion,
    }
    first = requests.post(token_endpoint, data=form, timeout=TIMEOUT)
    check(first.status_code == 200, f"hand-built assertion: HTTP {first.status_code}: {first.text}")
    verify_access_token(first.json()["access_token"], META["issuer"], key_agent, "hand-built assertion")
    second = requests.post(token_endpoint, data=form, timeout=TIMEOUT)
    check(second.status_code == 401, f"replayed assertion: HTTP {second.status_code}: {second.text}")
    check(second.json().get("error") == "invalid_client", f"replayed assertion: {second.text}")
    ok("replay: a PyJWT-built assertion works once; posting it again is 401 invalid_client")

    # 11. Suspension: tokens go inactive at once and authlib's next request fails.
    check(introspect(key_token).get("active") is True, "key token not active before suspension")
    for agent, token, session, how in (
        (secret_agent, basic_token, basic, "client_secret_basic"),
        (key_agent, key_token, pk, "private_key_jwt"),
    ):
        suspended = api("POST", f"/v1/agents/{agent}/suspend", {"reason": "interop test"})
        check(suspended.get("status") == "suspended", f"suspend {agent}: {suspended}")
        check(introspect(token) == {"active": False}, f"{how}: token still active after suspension")
        expect_oauth_error(lambda: session.fetch_token(token_endpoint, grant_type="client_credentials", timeout=TIMEOUT), "invalid_client", f"suspended {how}")
        ok(f"suspension ({how}): introspection says active false; authlib's next token request is invalid_client")


if __name__ == "__main__":
    run(main, "all interop checks passed")
