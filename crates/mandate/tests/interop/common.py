"""What the OAuth interop scripts share (oauth_clients.py, token_exchange.py,
joserfc_ed25519.py): the server they run against, how a check fails or passes, the admin
API, and how a script ends.

The scripts import it as `common`: `interop.rs` runs them as `python <this dir>/<script>`,
so this directory is first on sys.path. Import it before authlib: it allows authlib's
plain-http use against the loopback server.
"""

import os
import sys
import traceback
import urllib.parse

# The server listens on loopback http; authlib refuses plain http for some checks
# (RFC 8414 metadata validation) unless told this is deliberate.
os.environ.setdefault("AUTHLIB_INSECURE_TRANSPORT", "1")

import requests

ADDR = os.environ["MANDATE_ADDR"].rstrip("/")
ADMIN = os.environ["MANDATE_TOKEN"]
TIMEOUT = 30
CRM = "https://crm.example.com"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


class CheckFailed(Exception):
    pass


def check(cond, what):
    if not cond:
        raise CheckFailed(what)


def ok(what):
    print(f"ok   {what}", flush=True)


def api(method, path, body=None, token=ADMIN, expect=(200, 201)):
    """A request to Mandate's API with `token` (the admin token unless given); its JSON."""
    res = requests.request(
        method,
        ADDR + path,
        json=body,
        headers={"Authorization": f"Bearer {token}"},
        timeout=TIMEOUT,
    )
    check(res.status_code in expect, f"{method} {path}: HTTP {res.status_code}: {res.text}")
    return res.json() if res.content else None


def register_agent(name, audiences):
    """An agent that may do `crm:*` for `audiences`; its id."""
    boundary = {"grants": [{"actions": ["crm:*"], "resources": ["crm:*"]}], "audiences": audiences}
    return api("POST", "/v1/agents", {"name": name, "owner": "interop@example.com", "boundary": boundary})["id"]


class Spy:
    """Records the last request an authlib session sent."""

    def __init__(self, session):
        self.last = None
        session.hooks["response"].append(self._hook)

    def _hook(self, res, *args, **kwargs):
        self.last = res.request

    def body(self):
        raw = self.last.body or ""
        if isinstance(raw, bytes):
            raw = raw.decode()
        return dict(urllib.parse.parse_qsl(raw))


def run(main, done):
    """Runs `main`: on the first failed check, or anything unexpected from the clients,
    prints `FAIL …` and exits 1; else prints `done`."""
    try:
        main()
    except CheckFailed as e:
        print(f"FAIL {e}", flush=True)
        sys.exit(1)
    except Exception:  # anything unexpected from the clients is a failure too
        print("FAIL unexpected error:", flush=True)
        traceback.print_exc(file=sys.stdout)
        sys.exit(1)
    print(done, flush=True)
