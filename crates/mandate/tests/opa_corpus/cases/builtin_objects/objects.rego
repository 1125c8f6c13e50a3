package builtins.objects

o := {"a": 1, "b": {"c": 2, "d": [3, 4]}, "e": null}

results := {
    "get": object.get(o, "a", "default"),
    "get_missing": object.get(o, "zz", "default"),
    "get_path": object.get(o, ["b", "c"], 0),
    "get_null_value": object.get(o, "e", "default"),
    "keys": object.keys(o),
    "remove": object.remove(o, ["a", "e"]),
    "filter": object.filter(o, {"a", "e"}),
    "union": object.union({"a": 1, "b": {"x": 1}}, {"b": {"y": 2}}),
    "union_n": object.union_n([{"a": 1}, {"a": 2, "c": 3}]),
    "json_filter": json.filter(o, ["b/c", "e"]),
    "json_remove": json.remove(o, ["b/d"]),
    "subset": object.subset(o, {"b": {"c": 2}}),
}
