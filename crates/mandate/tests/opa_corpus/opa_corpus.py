"""The OPA-equivalence corpus (issue 22): every case evaluated by OPA's own Go evaluator
and by Mandate, the two answers compared.

    opa_corpus.py opa [--record FILE]                  OPA's side only: every case must
                                                       evaluate; answers written to FILE
    opa_corpus.py cli --mandate BIN [--record FILE]    mode A: `BIN policy eval …`
    opa_corpus.py api --url URL --opa-url URL --token TOKEN [--record FILE]
                                                       mode B: a running Mandate (policies
                                                       loaded through its policy API, queries
                                                       through its OPA Data API)

OPA's side is `opa_bindings` (PyPI `opa-golib-python-bindings`, OPA's Go `rego` package in a
c-shared library). A case is a directory of `cases/`: its `*.rego` modules, an optional
`data.json` (the base document) and `case.json`: `source`, optional `rego_v0` (the modules
are Rego v0; OPA's side evaluates their v1 rewrite in `v1/`, as the bindings parse v1
only), and `queries`: `id`, `path` (the Data API's slash path, `""` for `data`), optional
`input`, optional `opa_strict_builtin_error` (see `expected`). Each query is one case of
the corpus, named `<dir>/<id>`.

An answer is `{"result": v}`, `{}` (undefined) or `{"error": kind}`. Results are equal as
JSON values: objects by key, arrays (and sets, which OPA returns as arrays in its own
order) element by element in order, numbers by value, booleans never equal to numbers.
Errors are equal to errors whatever their codes. A case listed in
`known_differences.json` must still differ (so a fixed limitation is noticed).

Exit status: 0 all equal (or, for `opa`, all evaluated), 1 a difference or a corpus
error, 2 the harness could not run. Only the standard library besides `opa_bindings`.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
CASES = HERE / "cases"
KNOWN = HERE / "known_differences.json"
# The floor the issue sets is 50 (policy, input, query) cases; the corpus holds more.
MIN_CASES = 60
UNDEFINED = {}


class CorpusError(Exception):
    """The corpus itself is wrong (not a difference between the two sides)."""


# -- the corpus ------------------------------------------------------------------------


class Case:
    def __init__(self, directory, spec, query):
        self.dir = directory
        self.id = f"{directory.name}/{query['id']}"
        self.source = spec["source"]
        self.rego_v0 = bool(spec.get("rego_v0", False))
        self.path = query["path"]
        self.has_input = "input" in query
        self.input = query.get("input")
        self.strict_builtin_error = bool(query.get("opa_strict_builtin_error", False))
        self.modules = sorted(directory.glob("*.rego"))
        self.opa_modules = sorted((directory / "v1").glob("*.rego")) if self.rego_v0 else self.modules
        data = directory / "data.json"
        self.data_file = data if data.exists() else None
        self.data = json.loads(data.read_text()) if self.data_file else None


def load_cases():
    cases, ids = [], set()
    for d in sorted(p for p in CASES.iterdir() if p.is_dir()):
        spec = json.loads((d / "case.json").read_text())
        unknown = set(spec) - {"source", "note", "rego_v0", "queries"}
        if unknown:
            raise CorpusError(f"{d.name}/case.json: unknown members {sorted(unknown)}")
        if not spec.get("source"):
            raise CorpusError(f"{d.name}/case.json: no `source`")
        for q in spec["queries"]:
            unknown = set(q) - {"id", "path", "input", "opa_strict_builtin_error"}
            if unknown:
                raise CorpusError(f"{d.name}: query {q.get('id')}: unknown members {sorted(unknown)}")
            c = Case(d, spec, q)
            if c.id in ids:
                raise CorpusError(f"{c.id}: duplicate id")
            ids.add(c.id)
            if not c.modules:
                raise CorpusError(f"{c.id}: no *.rego module")
            if c.rego_v0 and [m.name for m in c.opa_modules] != [m.name for m in c.modules]:
                raise CorpusError(f"{c.id}: a v0 case needs v1/ rewrites of exactly its modules")
            cases.append(c)
    if len(cases) < MIN_CASES:
        raise CorpusError(f"only {len(cases)} cases; the corpus promises at least {MIN_CASES}")
    return cases


def load_known():
    known = {}
    for k in json.loads(KNOWN.read_text()):
        if not k.get("reason"):
            raise CorpusError(f"known difference {k.get('case')}: no reason")
        known[k["case"]] = k["reason"]
    return known


# -- OPA's side ------------------------------------------------------------------------


def opa_ref(path):
    """The Data API's ref for a slash path: each segment a string key, as OPA's server
    builds it (`/v1/data/a/b` is `data["a"]["b"]`)."""
    segs = [s for s in path.split("/") if s]
    return "data" + "".join(f"[{json.dumps(s)}]" for s in segs)


def opa_answer(case):
    """OPA's answer to `case`: its Go evaluator (strict built-in errors, fixed by the
    bindings; see `expected`)."""
    from opa_bindings import OpaEngine, OpaError

    with OpaEngine() as engine:
        try:
            for m in case.opa_modules:
                engine.add_policy(m.name, m.read_text())
            if case.data is not None:
                engine.add_data(case.data)
            rows = engine.eval_query(
                f"x := {opa_ref(case.path)}", case.input if case.has_input else None
            )
        except OpaError as e:
            kind = "eval" if e.code == "eval_error" else "compile"
            return {"error": kind, "message": e.message}
    if not rows:
        return dict(UNDEFINED)
    if len(rows) != 1:
        raise CorpusError(f"{case.id}: OPA gave {len(rows)} results for one ref")
    return {"result": rows[0]["x"]}


def check_v0_is_v0(case):
    """A v0 case's modules really need v0: OPA refuses at least one of them as v1."""
    from opa_bindings import OpaEngine, OpaError

    for m in case.modules:
        with OpaEngine() as engine:
            try:
                engine.add_policy(m.name, m.read_text())
            except OpaError:
                return
    raise CorpusError(f"{case.id}: flagged rego_v0 but OPA parses its modules as v1")


def expected(case):
    """What OPA's Data API answers. The bindings evaluate with strict built-in errors
    (a constant in their bridge); `opa run --server` does not, so there a built-in's
    error makes its expression undefined. A query that meets a built-in error is marked
    `opa_strict_builtin_error` and chosen so the failing expression decides the whole
    answer: OPA's server answers undefined."""
    got = opa_answer(case)
    builtin_error = "error" in got and "eval_builtin_error" in got.get("message", "")
    if case.strict_builtin_error:
        if not builtin_error:
            raise CorpusError(f"{case.id}: marked opa_strict_builtin_error, OPA says {got}")
        return dict(UNDEFINED), got
    if builtin_error:
        raise CorpusError(
            f"{case.id}: OPA's strict evaluator met a built-in error ({got['message']}); "
            "mark it opa_strict_builtin_error or change the case"
        )
    return got, got


# -- Mandate's side --------------------------------------------------------------------


def cli_answer(mandate, case):
    """Mode A: `mandate policy eval --data-path PATH [--input FILE] [--rego-v0] FILES…`
    (the case's modules, then its `data.json` as the base document, as `opa eval -d`
    takes it). Exit 0: the Data API's body on stdout; 1: a compile error; 2: an
    evaluation error, `{"code": …, "message": …}` on stdout; anything else is a failure
    of the harness, never an answer."""
    with tempfile.TemporaryDirectory() as tmp:
        args = [mandate, "policy", "eval", "--data-path", case.path]
        if case.has_input:
            inp = Path(tmp) / "input.json"
            inp.write_text(json.dumps(case.input))
            args += ["--input", str(inp)]
        if case.rego_v0:
            args.append("--rego-v0")
        args += [str(m) for m in case.modules]
        if case.data_file:
            args.append(str(case.data_file))
        p = subprocess.run(args, capture_output=True, text=True, timeout=60)
    if p.returncode == 0:
        body = json.loads(p.stdout)
        if set(body) - {"result"}:
            raise RuntimeError(f"{case.id}: unexpected members in {p.stdout!r}")
        return body
    if p.returncode == 1:
        return {"error": "compile", "message": p.stdout + p.stderr}
    if p.returncode == 2:
        # clap also exits 2, on a usage error: only the error body makes it an answer.
        try:
            body = json.loads(p.stdout)
        except ValueError:
            body = None
        if isinstance(body, dict) and {"code", "message"} <= set(body):
            return {"error": "eval", "message": p.stdout}
    raise RuntimeError(f"{case.id}: {args} exited {p.returncode}:\n{p.stdout}{p.stderr}")


class Api:
    """Mode B: a running Mandate. Each case's modules and data become a policy version
    (`POST /v1/policies` with `rego_modules` and `data`, then activate) on the main
    listener; queries go to the OPA Data API (`POST {opa_url}/v1/data/{path}`)."""

    def __init__(self, url, opa_url, token):
        self.url, self.opa_url, self.token = url.rstrip("/"), opa_url.rstrip("/"), token
        self.loaded = None  # (dir, version or an error answer)

    def call(self, base, method, path, body):
        req = urllib.request.Request(
            base + path,
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return r.status, json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            raw = e.read()
            try:
                return e.code, json.loads(raw)
            except ValueError:
                return e.code, raw.decode(errors="replace")

    def load(self, case):
        if self.loaded and self.loaded[0] == case.dir:
            return self.loaded[1]
        body = {
            "policies": "",
            "note": f"opa corpus {case.dir.name}",
            "rego_modules": [
                {"id": m.name, "source": m.read_text(), **({"rego_v0": True} if case.rego_v0 else {})}
                for m in case.modules
            ],
        }
        if case.data is not None:
            body["data"] = case.data
        st, v = self.call(self.url, "POST", "/v1/policies", body)
        if st == 400:
            state = {"error": "compile", "message": json.dumps(v)}
        elif st != 201:
            raise RuntimeError(f"{case.id}: POST /v1/policies: {st} {v}")
        else:
            st, a = self.call(self.url, "POST", f"/v1/policies/{v['version']}/activate", None)
            if st != 200:
                raise RuntimeError(f"{case.id}: activate: {st} {a}")
            state = None
        self.loaded = (case.dir, state)
        return state

    def answer(self, case):
        failed = self.load(case)
        if failed:
            return failed
        segments = [urllib.parse.quote(s, safe="") for s in case.path.split("/") if s]
        path = "/v1/data" + "".join("/" + s for s in segments)
        st, v = self.call(self.opa_url, "POST", path, {"input": case.input} if case.has_input else {})
        if st == 200:
            if not isinstance(v, dict) or "decision_id" not in v:
                raise RuntimeError(f"{case.id}: no decision_id in {v}")
            return {k: v[k] for k in v if k == "result"}
        if 400 <= st < 600 and st not in (401, 403, 404):
            return {"error": "eval", "message": json.dumps(v)}
        raise RuntimeError(f"{case.id}: POST {path}: {st} {v}")


# -- comparing -------------------------------------------------------------------------


def same(a, b):
    """Equal as JSON values (see the module's doc)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


def same_answer(want, got):
    if "error" in want or "error" in got:
        return "error" in want and "error" in got
    if "result" in want or "result" in got:
        return "result" in want and "result" in got and same(want["result"], got["result"])
    return True


def selftest():
    """The comparison's own rules, each of which a wrong `same` would break."""
    assert same(1, 1.0) and same(10**30, 10**30) and not same(10**30, 1e30)
    assert not same(True, 1) and not same(0, False) and not same(None, False)
    assert same({"a": [1, {"b": None}]}, {"a": [1, {"b": None}]})
    assert not same([1, 2], [2, 1]) and not same([1], [1, 1]) and not same({"a": 1}, {"a": 1, "b": 2})
    assert not same("1", 1) and not same([], {})
    assert same_answer({}, {}) and same_answer({"error": "eval"}, {"error": "compile"})
    assert not same_answer({}, {"result": None}) and not same_answer({"error": "eval"}, {})
    assert not same_answer({"result": False}, {}) and not same_answer({}, {"error": "eval"})
    assert opa_ref("") == "data" and opa_ref("a/b c/0") == 'data["a"]["b c"]["0"]'


def show(answer):
    return json.dumps(answer, sort_keys=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="mode", required=True)
    o = sub.add_parser("opa")
    o.add_argument("--record")
    c = sub.add_parser("cli")
    c.add_argument("--mandate", required=True)
    c.add_argument("--record")
    a = sub.add_parser("api")
    a.add_argument("--url", required=True)
    a.add_argument("--opa-url", required=True)
    a.add_argument("--token", default=os.environ.get("MANDATE_TOKEN"))
    a.add_argument("--record")
    args = ap.parse_args()

    selftest()
    try:
        import opa_bindings  # noqa: F401  (fail before anything else when missing)
    except ImportError as e:
        print(f"opa corpus: cannot import opa_bindings ({e}); install opa-golib-python-bindings", file=sys.stderr)
        return 2
    try:
        cases = load_cases()
        known = load_known()
        unknown = set(known) - {c.id for c in cases}
        if unknown:
            raise CorpusError(f"known_differences.json names no case: {sorted(unknown)}")
    except CorpusError as e:
        print(f"opa corpus: {e}", file=sys.stderr)
        return 1

    if args.mode == "cli":
        mandate_side = lambda case: cli_answer(args.mandate, case)  # noqa: E731
    elif args.mode == "api":
        if not args.token:
            print("opa corpus: api mode needs --token or MANDATE_TOKEN", file=sys.stderr)
            return 2
        mandate_side = Api(args.url, args.opa_url, args.token).answer
    else:
        mandate_side = None

    record, failures, equal, still_known = [], [], 0, 0
    for case in cases:
        try:
            if case.rego_v0:
                check_v0_is_v0(case)
            want, opa_raw = expected(case)
        except CorpusError as e:
            failures.append(f"CORPUS {case.id}: {e}")
            print(f"CORPUS {case.id}: {e}")
            continue
        row = {"case": case.id, "path": case.path, "opa": want}
        if want != opa_raw:
            row["opa_evaluator"] = opa_raw
        if mandate_side is None:
            print(f"opa    {case.id}: {show(want)[:160]}")
            record.append(row)
            continue
        try:
            got = mandate_side(case)
        except Exception as e:  # the harness or Mandate broke: never counted as an answer
            failures.append(f"BROKEN {case.id}: {e}")
            print(f"BROKEN {case.id}: {e}")
            continue
        row["mandate"] = got
        record.append(row)
        equal_now = same_answer(want, got)
        if case.id in known:
            if equal_now:
                failures.append(f"FIXED  {case.id}: now equal to OPA; remove it from known_differences.json")
                print(failures[-1])
            else:
                still_known += 1
                print(f"known  {case.id}: {known[case.id]}")
        elif equal_now:
            equal += 1
            print(f"ok     {case.id}")
        else:
            msg = f"DIFF   {case.id} ({case.dir}):\n  OPA:     {show(want)}\n  Mandate: {show(got)}"
            failures.append(msg)
            print(msg)

    if args.record:
        Path(args.record).write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    if mandate_side is None:
        ok = len(cases) - len(failures)
        print(f"opa corpus: {len(cases)} cases, {ok} evaluated by OPA, {len(failures)} corpus errors")
    else:
        print(
            f"opa corpus ({args.mode}): {len(cases)} cases, {equal} equal to OPA, "
            f"{still_known} known differences, {len(failures)} failures"
        )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
