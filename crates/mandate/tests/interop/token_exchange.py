#!/usr/bin/env python3
"""Mandate's RFC 8693 token exchange from third-party clients: authlib and PyJWT.

Reads MANDATE_ADDR (the server's base URL) and MANDATE_TOKEN (an admin token) from the
environment; the server must run with the development user issuer on
(MANDATE_DEV_USER_TOKENS=true). The admin API (plain requests) sets the scene: a policy
set, an agent with a client secret, a user token. The agent's own token comes from
authlib (client credentials), and with it the agent asks for a mandate. Then authlib's
OAuth2Session, authenticating with client_secret_basic, exchanges the user's token for
a mandate token (`fetch_token` with the token-exchange grant and Mandate's `mandate`
extension parameter), and PyJWT verifies that token against the JWKS.

Prints one line per check and exits non-zero on the first failure.
"""

import time
import warnings

from common import ADDR, TIMEOUT, CheckFailed, Spy, api, check, ok, run

import jwt  # PyJWT
import requests
from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.requests_client import OAuth2Session
from joserfc.errors import SecurityWarning

# joserfc (under authlib) warns on the JOSE name "EdDSA" (RFC 9864); nothing here signs
# or verifies with joserfc, so any SecurityWarning is a failure.
warnings.simplefilter("error", SecurityWarning)

TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS_TOKEN = "urn:ietf:params:oauth:token-type:access_token"
JWT_TYPE = "urn:ietf:params:oauth:token-type:jwt"

SCHEMA = """namespace Billing { entity Invoice; }
namespace Mandate {
  action "billing:read" in ["all"] appliesTo { principal: [Agent], resource: [Billing::Invoice] };
}
"""
POLICIES = """@id("agents-request-mandates")
permit (principal, action == Mandate::Action::"mandate:request", resource);

@id("finance-reads-invoices")
permit (principal, action == Mandate::Action::"billing:read", resource)
when { context has user && context.user in Mandate::Group::"finance" };
"""


def main():
    meta = requests.get(ADDR + "/.well-known/oauth-authorization-server", timeout=TIMEOUT).json()
    token_endpoint = meta["token_endpoint"]
    jwks = jwt.PyJWKClient(meta["jwks_uri"], cache_keys=True, timeout=TIMEOUT)

    # 1. The scene, through the admin API.
    version = api("POST", "/v1/policies", {"policies": POLICIES, "schema_fragments": [SCHEMA], "note": "interop"})["version"]
    api("POST", f"/v1/policies/{version}/activate")
    boundary = {"grants": [{"actions": ["billing:read"], "resources": ["Billing::Invoice/*"]}]}
    agent = api("POST", "/v1/agents", {"name": "interop-exchange", "owner": "ops@example.com", "boundary": boundary})["id"]
    secret = api("POST", f"/v1/agents/{agent}/credentials", {"type": "client_secret"})["client_secret"]
    issued = api("POST", "/v1/dev/user-tokens", {"sub": "dana", "email": "dana@example.com", "groups": ["finance"]})
    user_token = issued["token"]
    check(issued["issuer"] == ADDR + "/dev-users", f"dev issuer {issued['issuer']!r}")
    ok(f"setup: policies v{version} active, agent {agent}, a user token for dana from {issued['issuer']}")

    # 2. The agent's own token (authlib, client credentials) asks for a mandate for dana.
    session = OAuth2Session(agent, secret, token_endpoint_auth_method="client_secret_basic")
    spy = Spy(session)
    own = session.fetch_token(token_endpoint, grant_type="client_credentials", timeout=TIMEOUT)["access_token"]
    mandate = api(
        "POST",
        "/v1/mandates",
        {"intent": "read dana's invoices", "scope": [boundary["grants"][0]], "lifetime_secs": 600, "user_token": user_token},
        token=own,
    )
    check(mandate["status"] == "active", f"mandate status {mandate['status']!r}")
    check(mandate["user"]["sub"] == "dana", f"mandate user {mandate['user']}")
    mandate_id = mandate["id"]
    ok(f"mandate: the agent's authlib token requests {mandate_id}, active at once")

    # 3. RFC 8693 through authlib: client_secret_basic, the user's token as the subject.
    tok = session.fetch_token(
        token_endpoint,
        grant_type=TOKEN_EXCHANGE,
        subject_token=user_token,
        subject_token_type=JWT_TYPE,
        mandate=mandate_id,
        timeout=TIMEOUT,
    )
    sent = spy.body()
    check(spy.last.headers.get("Authorization", "").startswith("Basic "), "authlib did not send Basic credentials")
    check("client_secret" not in sent, "client_secret_basic leaked the secret into the body")
    check(sent.get("grant_type") == TOKEN_EXCHANGE, f"grant_type sent: {sent.get('grant_type')!r}")
    check(sent.get("mandate") == mandate_id and sent.get("subject_token_type") == JWT_TYPE, f"authlib sent {sorted(sent)}")
    check(tok["token_type"].lower() == "bearer", f"token_type {tok['token_type']!r}")
    check(tok.get("issued_token_type") == ACCESS_TOKEN, f"issued_token_type {tok.get('issued_token_type')!r}")
    check(tok.get("scope") == "billing:read", f"scope {tok.get('scope')!r}")
    check(0 < tok.get("expires_in", 0) <= 600, f"expires_in {tok.get('expires_in')!r}")
    mandate_token = tok["access_token"]
    ok("token exchange: authlib fetch_token(grant_type=token-exchange, subject_token_type=jwt, mandate=…) with client_secret_basic")

    # 4. PyJWT verifies the mandate token against the JWKS.
    header = jwt.get_unverified_header(mandate_token)
    check(header.get("typ") == "at+jwt" and header.get("alg") == "EdDSA", f"header {header}")
    claims = jwt.decode(
        mandate_token,
        jwks.get_signing_key_from_jwt(mandate_token).key,
        algorithms=["EdDSA"],
        issuer=meta["issuer"],
        audience=meta["issuer"],
        options={"require": ["iss", "sub", "aud", "exp", "iat", "jti"]},
    )
    check(claims["sub"] == "dana", f"sub {claims['sub']!r}")
    check(claims.get("act") == {"sub": agent}, f"act {claims.get('act')!r}")
    check(claims.get("mandate") == mandate_id, f"mandate {claims.get('mandate')!r}")
    check(claims.get("client_id") == agent, f"client_id {claims.get('client_id')!r}")
    check(claims.get("scope") == "billing:read", f"scope claim {claims.get('scope')!r}")
    check(claims["exp"] > time.time(), "already expired")
    ok("pyjwt: the mandate token verifies (EdDSA, JWKS, iss, aud); sub=dana, act.sub=agent, mandate=id")

    # 5. Mandate decides with it, for dana.
    decision = api(
        "POST",
        "/v1/authorize",
        {"action": "billing:read", "resource": {"type": "Billing::Invoice", "id": "inv-7"}},
        token=mandate_token,
    )
    check(decision["decision"] == "allow", f"decision {decision}")
    ok("authorize: billing:read with the mandate token is allowed (dana is in finance)")

    # 6. Refusals as authlib sees them.
    try:
        session.fetch_token(token_endpoint, grant_type=TOKEN_EXCHANGE, subject_token=user_token[:-4] + "AAAA",
                            subject_token_type=JWT_TYPE, mandate=mandate_id, timeout=TIMEOUT)
    except OAuthError as e:
        check(e.error == "invalid_request", f"forged subject token: {e.error} ({e.description})")
    else:
        raise CheckFailed("a forged subject token was exchanged")
    api("POST", f"/v1/mandates/{mandate_id}/revoke", {"reason": "interop"})
    try:
        session.fetch_token(token_endpoint, grant_type=TOKEN_EXCHANGE, subject_token=user_token,
                            subject_token_type=JWT_TYPE, mandate=mandate_id, timeout=TIMEOUT)
    except OAuthError as e:
        check(e.error == "invalid_grant", f"revoked mandate: {e.error} ({e.description})")
    else:
        raise CheckFailed("a revoked mandate still gave a token")
    decision = api(
        "POST",
        "/v1/authorize",
        {"action": "billing:read", "resource": {"type": "Billing::Invoice", "id": "inv-7"}},
        token=mandate_token,
    )
    check(decision["decision"] == "deny" and decision["reasons"][0] == "mandate_inactive", f"after revocation: {decision}")
    ok("refusals: a forged subject token is invalid_request; after revocation authlib gets invalid_grant and the token is denied")


if __name__ == "__main__":
    run(main, "all token exchange checks passed")
