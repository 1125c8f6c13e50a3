"""Kill-switch propagation across a cluster: the client side of bench/cluster_killswitch.sh.

Node 1 is where the kill is called; nodes 2.. are hammered with the agent's token on
`POST /v1/authorize` by CONNS keep-alive connections each (one asyncio task per
connection, each sending its next request as soon as the last one was answered).

One trial of a kind:
  1. prepare on node 1 (resume the agent if needed, a fresh token, for `mandate` a fresh
     mandate and its exchanged token; for `token` the token's jti);
  2. hammer every other node with that token until each has answered `allow` at least
     once (a trial whose token never allows on some node within 10 s is an error: it
     would measure nothing);
  3. the kill on node 1 (suspend, contain, mandate revoke, token revoke); `answer` is the
     moment its response was read in full (HTTP 200);
  4. keep hammering until `answer + OBSERVE_MS`, then stop.

Measured per trial (all times from one monotonic clock, `time.perf_counter`):
  propagation = max over allows whose request was SENT at or after `answer` of
                (moment that allow was read - answer); 0 if there is none.
  An allow sent before `answer` is not counted: it may have been decided before the kill
  was committed. Reading the allow's answer (not its sending) makes the figure an upper
  bound on how long after the kill's answer some node still allowed.
  late allows = allows whose request was sent more than BOUND_MS after `answer`
                (must be 0).

Prints a Markdown section: per kind p50, p90, p99, max, the late allows, and a text
histogram. Exit status 1 if any trial failed or any allow came after the bound.
"""

import argparse
import asyncio
import base64
import json
import math
import sys
import time

import aiohttp

BODY = json.dumps(
    {
        "action": "crm:read",
        "resource": {"type": "Crm::Contact", "id": "c-1", "attributes": {"team": "sales"}},
        "context": {"data_class": "internal"},
    }
).encode()
ALLOW = b'"decision":"allow"'
BUCKETS_MS = [0, 1, 2, 5, 10, 20, 50, 100, 200, math.inf]
EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"


class Failure(Exception):
    pass


class Bench:
    def __init__(self, args, session):
        self.a = args
        self.s = session
        self.control = args.nodes[0]
        self.targets = args.nodes[1:]
        self.admin = {"Authorization": f"Bearer {args.admin}"}
        # The agents, each {id, basic, suspended, contained_at}: the one given, and for
        # `contain` a few more taken in turn (see `prepare`).
        self.agents = [self.agent_entry(args.agent, args.secret)]

    @staticmethod
    def agent_entry(agent, secret):
        return {"id": agent, "basic": aiohttp.BasicAuth(agent, secret), "suspended": False, "contained_at": 0.0}

    async def more_agents(self, n):
        """Registers n more agents like the first (for `contain`)."""
        for i in range(n):
            a = await self.call(
                "POST",
                "/v1/agents",
                json_body={
                    "name": f"bench-bot-{i + 2}",
                    "owner": "bench@example.com",
                    "labels": {"team": "sales"},
                    "boundary": {
                        "grants": [
                            {"actions": ["crm:*"], "resources": ["Crm::Contact/*"], "data_classes": ["internal"]}
                        ]
                    },
                },
            )
            c = await self.call("POST", f"/v1/agents/{a['id']}/credentials", json_body={"type": "client_secret"})
            self.agents.append(self.agent_entry(a["id"], c["client_secret"]))

    async def call(self, method, path, *, headers=None, json_body=None, form=None, auth=None):
        """One control-plane call on node 1; its JSON answer, or Failure."""
        async with self.s.request(
            method,
            self.control + path,
            headers=headers if headers is not None else self.admin,
            json=json_body,
            data=form,
            auth=auth,
        ) as r:
            text = await r.text()
            if r.status != 200 and r.status != 201:
                raise Failure(f"{method} {path}: {r.status} {text[:300]}")
            return json.loads(text) if text else {}

    async def token(self, agent):
        t = await self.call(
            "POST", "/oauth/token", headers={}, form={"grant_type": "client_credentials"}, auth=agent["basic"]
        )
        return t["access_token"]

    async def mandate_token(self, agent):
        own = await self.token(agent)
        m = await self.call(
            "POST",
            "/v1/mandates",
            headers={"Authorization": f"Bearer {own}"},
            json_body={
                "intent": "kill-switch bench",
                "scope": [
                    {
                        "actions": ["crm:read"],
                        "resources": ["Crm::Contact/*"],
                        "data_classes": ["internal"],
                    }
                ],
                "lifetime_secs": 300,
            },
        )
        if m.get("status") != "active":
            raise Failure(f"the mandate is not active: {m}")
        t = await self.call(
            "POST",
            "/oauth/token",
            headers={},
            form={
                "grant_type": EXCHANGE,
                "subject_token": own,
                "subject_token_type": ACCESS_TOKEN_TYPE,
                "mandate": m["id"],
            },
            auth=agent["basic"],
        )
        return t["access_token"], m["id"]

    async def prepare(self, kind, i):
        """Trial i of `kind`: the agent, what to hammer with, and the kill (path, body).

        Tokens issued before a containment stay dead, and a token's `iat` is in whole
        seconds, so a token issued in the second of the containment is dead too: `contain`
        takes the agents in turn and uses one again only more than a second after its
        containment (waiting for the rest if need be)."""
        agent = self.agents[i % len(self.agents)] if kind == "contain" else self.agents[0]
        if agent["suspended"]:
            await self.call("POST", f"/v1/agents/{agent['id']}/resume", json_body={"reason": "bench: next trial"})
            agent["suspended"] = False
        wait = agent["contained_at"] + 1.1 - time.time()
        if wait > 0:
            await asyncio.sleep(wait)
        path = f"/v1/agents/{agent['id']}"
        if kind == "suspend":
            return agent, await self.token(agent), f"{path}/suspend", {"reason": "bench"}
        if kind == "contain":
            return agent, await self.token(agent), f"{path}/contain", {"reason": "bench"}
        if kind == "mandate":
            tok, mid = await self.mandate_token(agent)
            return agent, tok, f"/v1/mandates/{mid}/revoke", {"reason": "bench"}
        if kind == "token":
            tok = await self.token(agent)
            payload = tok.split(".")[1]
            jti = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["jti"]
            return agent, tok, f"/v1/tokens/{jti}/revoke", None
        raise Failure(f"unknown kind {kind}")

    async def resync(self):
        """After a failed trial: which agents are suspended now."""
        for agent in self.agents:
            a = await self.call("GET", f"/v1/agents/{agent['id']}")
            agent["suspended"] = a.get("status") == "suspended"

    async def hammer(self, url, token, log, stop, allowed):
        """Sends requests one after another until `stop`; logs (sent, read, allow, status)."""
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        clock = time.perf_counter
        while not stop.is_set():
            sent = clock()
            try:
                async with self.s.post(url, data=BODY, headers=headers) as r:
                    body = await r.read()
                    status = r.status
            except aiohttp.ClientError as e:
                log.append((sent, clock(), False, f"error {type(e).__name__}"))
                await asyncio.sleep(0.001)
                continue
            read = clock()
            allow = status == 200 and ALLOW in body
            log.append((sent, read, allow, status))
            if allow:
                allowed.set()

    async def trial(self, kind, i):
        agent, token, kill_path, kill_body = await self.prepare(kind, i)
        stop = asyncio.Event()
        logs, tasks, firsts = [], [], []
        for node in self.targets:
            allowed = asyncio.Event()
            firsts.append(allowed)
            for _ in range(self.a.conns):
                log = []
                logs.append(log)
                tasks.append(
                    asyncio.create_task(self.hammer(node + "/v1/authorize", token, log, stop, allowed))
                )
        try:
            try:
                await asyncio.wait_for(asyncio.gather(*(e.wait() for e in firsts)), 10)
            except asyncio.TimeoutError:
                raise Failure(f"{kind}: the token never allowed on some node: {summary(logs)}")
            await self.call("POST", kill_path, json_body=kill_body)
            answer = time.perf_counter()
            if kind in ("suspend", "contain"):
                agent["suspended"] = True
            if kind == "contain":
                agent["contained_at"] = time.time()
            await asyncio.sleep(self.a.observe_ms / 1000)
        finally:
            stop.set()
            await asyncio.gather(*tasks)
        prop, late, after = 0.0, 0, 0
        for log in logs:
            for sent, read, allow, _ in log:
                if sent < answer:
                    continue
                after += 1
                if allow:
                    prop = max(prop, (read - answer) * 1000)
                    if (sent - answer) * 1000 > self.a.bound_ms:
                        late += 1
        return prop, late, after

    async def run_kind(self, kind):
        props, late, requests, failures = [], 0, 0, []
        started = time.perf_counter()
        for i in range(self.a.trials):
            try:
                p, l, n = await self.trial(kind, i)
            except Failure as e:
                failures.append(str(e))
                await self.resync()
                if len(failures) > 10:
                    break
                continue
            props.append(p)
            late += l
            requests += n
            if (i + 1) % 100 == 0:
                print(f"[killswitch] {kind}: {i + 1} trials, p99 so far {pct(props, 99):.1f} ms", file=sys.stderr)
        return {
            "kind": kind,
            "props": props,
            "late": late,
            "requests": requests,
            "failures": failures,
            "secs": time.perf_counter() - started,
        }


def summary(logs):
    seen = {}
    for log in logs:
        for _, _, allow, status in log[-3:]:
            seen[(allow, status)] = seen.get((allow, status), 0) + 1
    return seen


def pct(values, p):
    """Nearest-rank percentile."""
    if not values:
        return float("nan")
    v = sorted(values)
    k = max(0, math.ceil(p / 100 * len(v)) - 1)
    return v[k]


def histogram(values):
    counts = [0] * (len(BUCKETS_MS) - 1)
    for v in values:
        for i in range(len(BUCKETS_MS) - 1):
            if BUCKETS_MS[i] <= v < BUCKETS_MS[i + 1]:
                counts[i] += 1
                break
    top = max(counts) or 1
    lines = []
    for i, c in enumerate(counts):
        lo, hi = BUCKETS_MS[i], BUCKETS_MS[i + 1]
        label = f"{lo:>4}–{hi:<4} ms" if hi != math.inf else f"{lo:>4}+      ms"
        lines.append(f"{label} {c:>6}  {'#' * math.ceil(50 * c / top)}")
    return lines


async def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nodes", required=True, help="comma-separated base URLs; the first is where kills are called")
    ap.add_argument("--admin", required=True)
    ap.add_argument("--agent", required=True)
    ap.add_argument("--secret", required=True)
    ap.add_argument("--trials", type=int, default=1000)
    ap.add_argument("--kinds", default="suspend,contain,mandate,token")
    ap.add_argument("--conns", type=int, default=2, help="hammering connections per node")
    ap.add_argument("--observe-ms", type=float, default=200)
    ap.add_argument("--bound-ms", type=float, default=100)
    ap.add_argument("--contain-agents", type=int, default=6, help="agents `contain` takes in turn")
    a = ap.parse_args()
    a.nodes = a.nodes.split(",")
    connector = aiohttp.TCPConnector(limit=0, limit_per_host=0, force_close=False)
    async with aiohttp.ClientSession(connector=connector) as s:
        b = Bench(a, s)
        if "contain" in a.kinds:
            await b.more_agents(a.contain_agents - 1)
        results = []
        for kind in a.kinds.split(","):
            print(f"[killswitch] {kind}: {a.trials} trials", file=sys.stderr)
            results.append(await b.run_kind(kind))
    bad = False
    print("| kill | trials | p50 ms | p90 ms | p99 ms | max ms | allows after the bound | requests after the answers | failed trials | p99 ≤ %g ms |" % a.bound_ms)
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    for r in results:
        p = r["props"]
        ok = p and pct(p, 99) <= a.bound_ms and r["late"] == 0 and not r["failures"]
        bad |= not ok
        print(
            f"| {r['kind']} | {len(p)} | {pct(p, 50):.1f} | {pct(p, 90):.1f} | {pct(p, 99):.1f} | "
            f"{max(p) if p else float('nan'):.1f} | {r['late']} | {r['requests']} | {len(r['failures'])} | "
            f"{'met' if ok else 'MISSED'} |"
        )
    print()
    for r in results:
        print(f"{r['kind']} ({len(r['props'])} trials, {r['secs']:.0f} s):")
        print()
        print("```")
        for line in histogram(r["props"]):
            print(line)
        print("```")
        for f in r["failures"][:5]:
            print(f"- failed trial: {f}")
        print()
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    asyncio.run(main())
