"""A Shared Signals push receiver (RFC 8935) made with PyJWT: the independent check of
the SETs Mandate transmits (crates/mandate/tests/e2e/ssf.rs).

  ssf_receiver.py JWKS_URL_FILE ISSUER

JWKS_URL_FILE holds Mandate's JWKS URL (written once Mandate listens, read at the first
SET); the audience a SET must name is this receiver's own origin.

Prints {"url": <push endpoint>, "calls": <GET: what it received>} once listening. Each
POSTed SET is verified with PyJWT against Mandate's JWKS (fetched from JWKS_URL):
`typ: secevent+jwt`, the signature, `iss`, `aud`, `iat` and `jti` present, exactly one
event. A valid SET is answered 202 and kept with the time it arrived; anything else 400
with RFC 8935's {"err", "description"}.
"""

import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt

JWKS_URL_FILE, ISSUER = sys.argv[1], sys.argv[2]
AUDIENCE = None
received = []
lock = threading.Lock()


def check(token):
    header = jwt.get_unverified_header(token)
    if header.get("typ") != "secevent+jwt":
        raise ValueError(f"typ is {header.get('typ')!r}")
    with open(JWKS_URL_FILE) as f:
        jwks = jwt.PyJWKClient(f.read().strip(), cache_keys=False)
    key = jwks.get_signing_key_from_jwt(token)
    claims = jwt.decode(
        token,
        key.key,
        algorithms=["EdDSA"],
        audience=AUDIENCE,
        issuer=ISSUER,
        options={"require": ["iat", "jti", "iss", "aud"]},
    )
    if len(claims["events"]) != 1:
        raise ValueError("not exactly one event")
    return claims


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def answer(self, status, body=None):
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        with lock:
            self.answer(200, list(received))

    def do_POST(self):
        arrived = time.time()
        length = int(self.headers.get("content-length", "0"))
        token = self.rfile.read(length).decode()
        if self.headers.get("content-type", "").split(";")[0] != "application/secevent+jwt":
            return self.answer(400, {"err": "invalid_request", "description": "content type"})
        try:
            claims = check(token)
        except Exception as e:  # noqa: BLE001 - any failure is a refusal
            return self.answer(400, {"err": "authentication_failed", "description": str(e)})
        with lock:
            received.append({"arrived": arrived, "claims": claims})
        self.answer(202)


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
port = server.server_address[1]
AUDIENCE = f"http://127.0.0.1:{port}"
print(
    json.dumps(
        {"url": f"http://127.0.0.1:{port}/ssf/push", "calls": f"http://127.0.0.1:{port}/received"}
    ),
    flush=True,
)
server.serve_forever()
