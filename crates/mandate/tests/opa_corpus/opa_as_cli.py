"""A stand-in for `mandate policy eval` answered by OPA itself, to test the harness's
mode A (`opa_corpus.py cli`) before and apart from Mandate's command: same arguments,
same output, same exit codes.

    opa_as_cli.py policy eval --data-path PATH [--input FILE|-] [--rego-v0] FILES…

`*.rego` files are modules, `*.json` files the base document. With `--rego-v0` the
modules' rewrites in `v1/` beside them are evaluated (OPA's bindings parse v1 only). A
built-in error answers `{}`, as OPA's server (not strict) does. With
`OPA_AS_CLI_WRONG=1` every defined result is replaced by `"wrong"`, so a harness that
compared nothing would be caught.
"""

import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from opa_corpus import opa_ref  # noqa: E402


def main():
    from opa_bindings import OpaEngine, OpaError

    args = sys.argv[1:]
    if args[:2] != ["policy", "eval"]:
        print("usage: opa_as_cli.py policy eval …", file=sys.stderr)
        return 64
    args = args[2:]
    path, input_file, v0, files = "", None, False, []
    while args:
        a = args.pop(0)
        if a == "--data-path":
            path = args.pop(0)
        elif a == "--input":
            input_file = args.pop(0)
        elif a == "--rego-v0":
            v0 = True
        else:
            files.append(Path(a))
    inp = None
    if input_file == "-":
        inp = json.load(sys.stdin)
    elif input_file:
        inp = json.loads(Path(input_file).read_text())
    with OpaEngine() as engine:
        try:
            for f in files:
                if f.suffix == ".rego":
                    src = f.parent / "v1" / f.name if v0 else f
                    engine.add_policy(f.name, src.read_text())
                else:
                    engine.add_data(json.loads(f.read_text()))
            rows = engine.eval_query(f"x := {opa_ref(path)}", inp)
        except OpaError as e:
            if "eval_builtin_error" in e.message:
                rows = []
            else:
                print(json.dumps({"code": e.code, "message": e.message}))
                return 2 if e.code == "eval_error" else 1
    body = {"result": rows[0]["x"]} if rows else {}
    if os.environ.get("OPA_AS_CLI_WRONG") == "1" and body:
        body = {"result": "wrong"}
    print(json.dumps(body))
    return 0


if __name__ == "__main__":
    sys.exit(main())
