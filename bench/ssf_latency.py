"""Drives bench/ssf_latency.sh: suspends agents one at a time and measures how long each
takes to reach a Shared Signals push receiver as a verified `session-revoked` SET.

  ssf_latency.py MANDATE_URL ADMIN_TOKEN RECEIVER_CALLS_URL COUNT PACE_MS LABEL

Registers COUNT agents, then suspends them PACE_MS apart. For each: the suspend call's
own latency (the baseline: the API answering), and the time from its answer to the
receiver's verified arrival (`arrived` in ssf_receiver.py, the same clock). Prints one
JSON line: LABEL, the counts, and p50/p90/p99/max of both, in milliseconds.
"""

import json
import sys
import time
import urllib.request

URL, ADMIN, CALLS, COUNT, PACE_MS, LABEL = sys.argv[1:7]
COUNT, PACE = int(COUNT), int(PACE_MS) / 1000
SESSION_REVOKED = "https://schemas.openid.net/secevent/caep/event-type/session-revoked"


def call(method, path, body=None):
    req = urllib.request.Request(
        URL + path,
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {ADMIN}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.load(r)


def received():
    with urllib.request.urlopen(CALLS, timeout=30) as r:
        return json.load(r)


def pct(xs, p):
    xs = sorted(xs)
    return round(xs[min(len(xs) - 1, int(p / 100 * len(xs)))] * 1000, 1)


agents = []
for i in range(COUNT):
    a = call("POST", "/v1/agents", {"name": f"ssf-{LABEL}-{i}", "owner": "bench@example.com"})
    agents.append(a["id"])

answered, api = {}, []
for agent in agents:
    t0 = time.time()
    call("POST", f"/v1/agents/{agent}/suspend", {"reason": "ssf latency bench"})
    t1 = time.time()
    answered[agent] = t1
    api.append(t1 - t0)
    time.sleep(PACE)

deadline = time.time() + 60
arrived = {}
while time.time() < deadline:
    for r in received():
        claims = r["claims"]
        sub = claims.get("sub_id", {}).get("sub")
        if SESSION_REVOKED in claims.get("events", {}) and sub in answered:
            arrived.setdefault(sub, r["arrived"])
    if len(arrived) == len(agents):
        break
    time.sleep(0.2)

missing = [a for a in agents if a not in arrived]
lat = [arrived[a] - answered[a] for a in agents if a in arrived]
print(
    json.dumps(
        {
            "label": LABEL,
            "suspended": len(agents),
            "sets_verified": len(lat),
            "missing": len(missing),
            "set_ms": {p: pct(lat, int(p[1:])) for p in ("p50", "p90", "p99")}
            | {"max": round(max(lat) * 1000, 1)},
            "suspend_api_ms": {p: pct(api, int(p[1:])) for p in ("p50", "p90", "p99")},
        }
    ),
    flush=True,
)
sys.exit(1 if missing else 0)
