"""A Shared Signals receiver that polls (RFC 8936), made with PyJWT and plain HTTP: the
independent check of Mandate's stream management (SSF 1.0 §8) and poll delivery
(crates/mandate/tests/e2e/ssf.rs).

  ssf_poll_receiver.py BASE_URL ISSUER ADMIN_TOKEN AGENT_ID...

BASE_URL is where Mandate listens; ISSUER its configured issuer, the prefix of every
URL its metadata names (mapped onto BASE_URL, as a receiver behind the issuer's proxy
would reach them). As a receiver, it:

1. reads /.well-known/ssf-configuration and checks it names poll delivery and the
   management endpoints;
2. creates a poll stream for CAEP session-revoked through the configuration endpoint;
3. asks for a verification event with a random state, polls until it arrives, checks
   it and acknowledges it;
4. suspends each AGENT_ID through Mandate's admin API;
5. long-polls until a session-revoked SET about each agent has arrived, verifying
   every SET with PyJWT against Mandate's JWKS (`typ`, signature, `iss`, `aud` = the
   stream's, one event) and that no other event type came;
6. acknowledges them all, and checks a poll then returns nothing, with nothing more
   available.

Prints {"stream_id", "subjects": [...], "jtis": [...]} and exits 0; any failure exits
non-zero with the reason on stderr.
"""

import json
import secrets
import sys
import time
import urllib.error
import urllib.request

import jwt

BASE, ISSUER, TOKEN = sys.argv[1].rstrip("/"), sys.argv[2].rstrip("/"), sys.argv[3]
AGENTS = sys.argv[4:]
SESSION_REVOKED = "https://schemas.openid.net/secevent/caep/event-type/session-revoked"
VERIFICATION = "https://schemas.openid.net/secevent/ssf/event-type/verification"


def local(url):
    if not url.startswith(ISSUER + "/"):
        raise SystemExit(f"{url} is not under the issuer {ISSUER}")
    return BASE + url[len(ISSUER):]


def call(method, url, body=None, expect=200):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("authorization", f"Bearer {TOKEN}")
    if data is not None:
        req.add_header("content-type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            status, raw = r.status, r.read()
    except urllib.error.HTTPError as e:
        status, raw = e.code, e.read()
    if status != expect:
        raise SystemExit(f"{method} {url}: {status} (want {expect}): {raw[:500]!r}")
    return json.loads(raw) if raw else None


meta = call("GET", BASE + "/.well-known/ssf-configuration")
assert meta["spec_version"] == "1_0", meta
assert "urn:ietf:rfc:8936" in meta["delivery_methods_supported"], meta
for k in ("configuration_endpoint", "status_endpoint", "verification_endpoint",
          "add_subject_endpoint", "remove_subject_endpoint"):
    assert meta[k].startswith(ISSUER + "/"), (k, meta)
jwks = jwt.PyJWKClient(local(meta["jwks_uri"]), cache_keys=False)

stream = call(
    "POST",
    local(meta["configuration_endpoint"]),
    {
        "delivery": {"method": "urn:ietf:rfc:8936"},
        "events_requested": [SESSION_REVOKED],
        "description": "PyJWT poll receiver",
    },
    expect=201,
)
sid = stream["stream_id"]
assert stream["iss"] == ISSUER, stream
assert stream["events_delivered"] == [SESSION_REVOKED], stream
assert stream["delivery"]["method"] == "urn:ietf:rfc:8936", stream
poll_url = local(stream["delivery"]["endpoint_url"])
status = call("GET", local(meta["status_endpoint"]) + f"?stream_id={sid}")
assert status["status"] == "enabled", status


def verified(token):
    header = jwt.get_unverified_header(token)
    if header.get("typ") != "secevent+jwt":
        raise SystemExit(f"typ is {header.get('typ')!r}")
    key = jwks.get_signing_key_from_jwt(token)
    claims = jwt.decode(
        token,
        key.key,
        algorithms=["EdDSA"],
        audience=stream["aud"],
        issuer=ISSUER,
        options={"require": ["iat", "jti", "iss", "aud"]},
    )
    if len(claims["events"]) != 1:
        raise SystemExit(f"not exactly one event: {claims}")
    return claims


def poll(**members):
    answer = call("POST", poll_url, members)
    sets = {}
    for jti, token in answer["sets"].items():
        claims = verified(token)
        if claims["jti"] != jti:
            raise SystemExit(f"the SET under {jti} says jti {claims['jti']}")
        sets[jti] = claims
    return sets, answer.get("moreAvailable", False)


# Verification: the SET names the stream and carries our state.
state = secrets.token_urlsafe(16)
call("POST", local(meta["verification_endpoint"]), {"stream_id": sid, "state": state}, expect=204)
deadline = time.time() + 30
while True:
    sets, _ = poll(maxEvents=10, returnImmediately=False)
    if sets:
        break
    if time.time() > deadline:
        raise SystemExit("no verification SET")
[(vjti, v)] = sets.items()
assert v["events"] == {VERIFICATION: {"state": state}}, v
assert v["sub_id"] == {"format": "opaque", "id": sid}, v
sets, more = poll(ack=[vjti], returnImmediately=True)
assert not sets and not more, (sets, more)

# The kill switch, pulled through Mandate's API.
for agent in AGENTS:
    call("POST", f"{BASE}/v1/agents/{agent}/suspend", {"reason": "poll receiver test"})

got = {}
deadline = time.time() + 30
while {c["sub_id"]["sub"] for c in got.values()} != set(AGENTS):
    if time.time() > deadline:
        raise SystemExit(f"SETs about {sorted(AGENTS)} did not all arrive: {got}")
    # Unacknowledged SETs come again (at least once): keep them by jti.
    sets, _ = poll(maxEvents=100, returnImmediately=False)
    got.update(sets)
for jti, c in got.items():
    if list(c["events"]) != [SESSION_REVOKED]:
        raise SystemExit(f"an event type not asked for: {c}")
    assert c["sub_id"]["iss"] == ISSUER and c["sub_id"]["format"] == "iss_sub", c

# Acknowledged: never again.
sets, more = poll(ack=sorted(got), maxEvents=100, returnImmediately=True)
assert not sets and not more, (sets, more)
sets, more = poll(maxEvents=100, returnImmediately=True)
assert not sets and not more, (sets, more)

print(json.dumps({
    "stream_id": sid,
    "subjects": sorted(c["sub_id"]["sub"] for c in got.values()),
    "jtis": sorted(got),
}))
