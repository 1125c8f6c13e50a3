"""Load and checks for bench/cluster_faults.sh ("nothing acked is lost" with a real
PostgreSQL restart).

  load  --nodes A,B --agent ID --secret S --token T --stop FILE --out FILE
        CONNS connections per node POST /v1/authorize with token T and one per node asks
        for tokens (client credentials) every 20 ms, until FILE exists. Writes JSON Lines:
        {"node", "sent", "read", "status", "decision_id"} per decision answered and
        {"token_id"} per token handed out; times are time.time() (the shell's `date +%s.%N`).
  check --seen FILE --down T0 --up T1 EXPORT...
        Every allow's decision_id and every token's id is in one of the exports (JSON
        Lines of `mandate audit export`); every decision sent at or after T0 and answered
        by T1 (PostgreSQL stopped) is a 503. Prints what it found; exit 1 on any miss.
"""

import argparse
import asyncio
import base64
import json
import os
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


async def load(a):
    nodes = a.nodes.split(",")
    out = open(a.out, "w")
    stop = asyncio.Event()

    async def decide(s, i):
        headers = {"Authorization": f"Bearer {a.token}", "Content-Type": "application/json"}
        while not stop.is_set():
            sent = time.time()
            try:
                async with s.post(nodes[i] + "/v1/authorize", data=BODY, headers=headers) as r:
                    body = await r.read()
                    status = r.status
            except (aiohttp.ClientError, asyncio.TimeoutError):
                await asyncio.sleep(0.005)
                continue
            rec = {"node": i, "sent": sent, "read": time.time(), "status": status, "decision_id": None}
            if status == 200:
                v = json.loads(body)
                if v.get("decision") == "allow":
                    rec["decision_id"] = v["decision_id"]
            out.write(json.dumps(rec) + "\n")

    async def tokens(s, i):
        auth = aiohttp.BasicAuth(a.agent, a.secret)
        while not stop.is_set():
            try:
                async with s.post(
                    nodes[i] + "/oauth/token", data={"grant_type": "client_credentials"}, auth=auth
                ) as r:
                    if r.status == 200:
                        tok = (await r.json())["access_token"]
                        p = tok.split(".")[1]
                        jti = json.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)))["jti"]
                        out.write(json.dumps({"token_id": jti}) + "\n")
            except (aiohttp.ClientError, asyncio.TimeoutError):
                pass
            await asyncio.sleep(0.02)

    async def watch():
        while not os.path.exists(a.stop):
            await asyncio.sleep(0.05)
        stop.set()

    timeout = aiohttp.ClientTimeout(total=5)
    async with aiohttp.ClientSession(timeout=timeout) as s:
        tasks = [asyncio.create_task(watch())]
        for i in range(len(nodes)):
            tasks += [asyncio.create_task(decide(s, i)) for _ in range(a.conns)]
            tasks.append(asyncio.create_task(tokens(s, i)))
        await asyncio.gather(*tasks)
    out.close()


def check(a):
    events, token_ids = set(), set()
    for path in a.exports:
        with open(path) as f:
            for line in f:
                e = json.loads(line).get("event")  # or a {"checkpoint": …} line
                if e is None:
                    continue
                if "node" in e and "seq" in e:
                    events.add(f"{e['node']}:{e['seq']}")
                if e.get("kind") == "token.issued":
                    token_ids.add(e["details"]["token_id"])
    allows, tokens, during, during_bad, statuses = [], [], 0, {}, {}
    with open(a.seen) as f:
        for line in f:
            r = json.loads(line)
            if "token_id" in r:
                tokens.append(r["token_id"])
                continue
            statuses[r["status"]] = statuses.get(r["status"], 0) + 1
            if r["decision_id"]:
                allows.append(r["decision_id"])
            if r["sent"] >= a.down and r["read"] <= a.up:
                during += 1
                if r["status"] != 503:
                    during_bad[r["status"]] = during_bad.get(r["status"], 0) + 1
    lost = [d for d in allows if d not in events]
    lost_tokens = [t for t in tokens if t not in token_ids]
    print(f"- decisions answered: {sum(statuses.values())} ({', '.join(f'{k}: {v}' for k, v in sorted(statuses.items()))})")
    print(f"- allows acked: {len(allows)}, not in the exported logs: {len(lost)} {lost[:3]}")
    print(f"- tokens handed out: {len(tokens)}, not in the exported logs: {len(lost_tokens)} {lost_tokens[:3]}")
    print(f"- decisions sent and answered while PostgreSQL was stopped: {during}, other than 503: {during_bad or 0}")
    # --down 0 --up 0: no outage was made (SKIP_PG_RESTART), none to check.
    outage_seen = during > 0 or a.down == a.up
    ok = not lost and not lost_tokens and not during_bad and outage_seen and allows and tokens
    print(f"- verdict: {'nothing acked is lost' if ok else 'FAILED'}")
    sys.exit(0 if ok else 1)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    l = sub.add_parser("load")
    l.add_argument("--nodes", required=True)
    l.add_argument("--agent", required=True)
    l.add_argument("--secret", required=True)
    l.add_argument("--token", required=True)
    l.add_argument("--stop", required=True)
    l.add_argument("--out", required=True)
    l.add_argument("--conns", type=int, default=2)
    c = sub.add_parser("check")
    c.add_argument("--seen", required=True)
    c.add_argument("--down", type=float, required=True)
    c.add_argument("--up", type=float, required=True)
    c.add_argument("exports", nargs="+")
    a = ap.parse_args()
    if a.cmd == "load":
        asyncio.run(load(a))
    else:
        check(a)


if __name__ == "__main__":
    main()
