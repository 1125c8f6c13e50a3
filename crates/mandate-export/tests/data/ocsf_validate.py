"""Validates OCSF records against the published schema, offline.

Usage: python ocsf_validate.py RECORDS.jsonl VERSION

Each line of RECORDS.jsonl is {"name": ..., "record": {...}}. Every record is checked
against its class (by class_uid) in the OCSF schema VERSION as the pinned pydantic-ocsf
package bundles it (the schema repository's own definitions; nothing is downloaded):

1. pydantic-ocsf's model of the class validates it: required attributes, types, enum
   values, id/caption siblings, category_uid, class_uid and type_uid;
2. a strict walk of the same definitions, because those models accept attributes they do
   not know: every attribute, at any depth, must be one of its class or object (except
   under `unmapped`), arrays and scalars where the schema says, required attributes and
   at_least_one/just_one constraints met, enum ids known.

Prints one line per problem, naming the record and the attribute path, and exits 1 if
there is any; prints "ok N records" and exits 0 otherwise.
"""

import importlib
import importlib.resources
import json
import sys

import pydantic


def load_schema(version):
    name = "v" + version.replace(".", "_") + ".json"
    text = importlib.resources.files("ocsf").joinpath("schemas", name).read_text("utf-8")
    return json.loads(text)


class Schema:
    def __init__(self, version):
        s = load_schema(version)
        self.version = version
        self.events = s["events"]
        self.objects = s["objects"]
        self.dict_attrs = s["dictionary"]["attributes"]
        self.types = s["dictionary"]["types"]["attributes"]
        cats = s["categories_meta"]["attributes"]
        self.category_uid = {n: c["uid"] for n, c in cats.items()}
        self.by_class_uid = {}
        for name, spec in self.events.items():
            uid, cat = spec.get("uid"), self.category_of(spec)
            if name == "base_event":
                self.by_class_uid[0] = name
            elif uid is not None and cat is not None:
                self.by_class_uid[cat * 1000 + uid] = name

    def category_of(self, spec):
        if spec.get("category"):
            return self.category_uid.get(spec["category"])
        parent = self.events.get(spec.get("extends", ""))
        return self.category_of(parent) if parent else None

    def attributes(self, spec, coll):
        out = {}
        parent = coll.get(spec.get("extends", ""))
        if parent is not None:
            out.update(self.attributes(parent, coll))
        for k, v in spec.get("attributes", {}).items():
            if not k.startswith("$"):
                merged = {**out.get(k, {}), **v}
                # A class's enum adds to its parent's (0 Unknown and 99 Other stay).
                if "enum" in v and "enum" in out.get(k, {}):
                    merged["enum"] = {**out[k]["enum"], **v["enum"]}
                out[k] = merged
        return out

    def constraints(self, spec, coll):
        c = dict(spec.get("constraints") or {})
        parent = coll.get(spec.get("extends", ""))
        if not c and parent is not None:
            return self.constraints(parent, coll)
        return c


def base_type(schema, t):
    seen = set()
    while t in schema.types and "type" in schema.types[t] and t not in seen:
        seen.add(t)
        t = schema.types[t]["type"]
    return t


def check_object(schema, value, attrs, constraints, where, path, errors):
    if not isinstance(value, dict):
        errors.append(f"{path or '/'}: {where} must be an object, got {type(value).__name__}")
        return
    for k in value:
        if k not in attrs:
            errors.append(f"{path}/{k}: not an attribute of {where}")
    for k, a in attrs.items():
        req = a.get("requirement", schema.dict_attrs.get(k, {}).get("requirement"))
        if req == "required" and k not in value:
            errors.append(f"{path}/{k}: required by {where}, missing")
    for rule, names in constraints.items():
        present = [n for n in names if n in value]
        if rule == "at_least_one" and not present:
            errors.append(f"{path or '/'}: {where} needs at least one of {names}")
        if rule == "just_one" and len(present) != 1:
            errors.append(f"{path or '/'}: {where} needs exactly one of {names}, has {present}")
    for k, v in value.items():
        if k in attrs and k != "unmapped":
            check_value(schema, k, attrs[k], v, f"{path}/{k}", errors)


def check_value(schema, name, spec, value, path, errors):
    d = schema.dict_attrs.get(name, {})
    t = spec.get("type") or d.get("type")
    is_array = spec.get("is_array", d.get("is_array", False))
    if is_array:
        if not isinstance(value, list):
            errors.append(f"{path}: must be an array")
            return
        for i, v in enumerate(value):
            check_scalar(schema, name, spec, d, t, v, f"{path}/{i}", errors)
    else:
        if isinstance(value, list):
            errors.append(f"{path}: must not be an array")
            return
        check_scalar(schema, name, spec, d, t, value, path, errors)


def check_scalar(schema, name, spec, d, t, value, path, errors):
    obj = spec.get("object_type") or d.get("object_type")
    if obj is None and (t in schema.objects or t == "object"):
        obj = t
    if obj is not None:
        if obj == "object":
            if not isinstance(value, dict):
                errors.append(f"{path}: must be an object")
            return
        ospec = schema.objects.get(obj)
        if ospec is None:
            errors.append(f"{path}: unknown object type {obj}")
            return
        check_object(
            schema,
            value,
            schema.attributes(ospec, schema.objects),
            schema.constraints(ospec, schema.objects),
            f"object {obj}",
            path,
            errors,
        )
        return
    base = base_type(schema, t)
    ok = {
        "string_t": lambda v: isinstance(v, str),
        "integer_t": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "long_t": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "float_t": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
        "boolean_t": lambda v: isinstance(v, bool),
        "json_t": lambda v: True,
    }.get(base)
    if ok is None:
        errors.append(f"{path}: unhandled type {t} ({base})")
        return
    if not ok(value):
        errors.append(f"{path}: must be {t}, got {json.dumps(value)}")
        return
    enum = spec.get("enum") or (d.get("enum") if name.endswith("_id") else None)
    if enum is not None and name.endswith("_id") and str(value) not in enum:
        errors.append(f"{path}: {value} is not one of {sorted(enum, key=int)}")


def check(schema, models, record):
    errors = []
    uid = record.get("class_uid")
    name = schema.by_class_uid.get(uid)
    if name is None:
        return [f"/class_uid: {uid!r} is no class of OCSF {schema.version}"]
    spec = schema.events[name]
    check_object(
        schema,
        record,
        schema.attributes(spec, schema.events),
        {},
        f"class {name} ({uid})",
        "",
        errors,
    )
    version = record.get("metadata", {}).get("version")
    if version != schema.version:
        errors.append(f"/metadata/version: {version!r}, validated against {schema.version}")
    model = getattr(models, pascal(name), None)
    if model is None:
        errors.append(f"pydantic-ocsf has no model of {name}")
        return errors
    try:
        model.model_validate(record)
    except pydantic.ValidationError as e:  # names each attribute
        errors.append(f"pydantic-ocsf {model.__name__}: {e}")
    return errors


def pascal(name):
    return "".join(p.title() for p in name.split("_"))


def main():
    path, version = sys.argv[1], sys.argv[2]
    schema = Schema(version)
    models = importlib.import_module("ocsf.v" + version.replace(".", "_") + ".events")
    # pydantic-ocsf builds its models lazily, and Base Event built as another class's
    # parent is left incomplete: build it first, on its own.
    models.BaseEvent.model_json_schema()
    failed, n = 0, 0
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            n += 1
            item = json.loads(line)
            for e in check(schema, models, item["record"]):
                failed += 1
                print(f"{item['name']}: {e}")
    if failed:
        print(f"FAILED: {failed} problems in {n} records")
        sys.exit(1)
    print(f"ok {n} records")


if __name__ == "__main__":
    main()
