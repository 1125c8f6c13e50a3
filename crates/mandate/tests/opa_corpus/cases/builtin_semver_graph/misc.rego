package builtins.misc

results := {
    "semver_compare": [semver.compare("1.2.3", "1.10.0"), semver.compare("2.0.0", "2.0.0-rc.1")],
    "semver_is_valid": [semver.is_valid("1.0.0"), semver.is_valid("v1.0")],
    "reachable": graph.reachable({"a": ["b"], "b": ["c"], "c": [], "d": ["a"]}, ["a"]),
    "walk_count": count([p | walk({"a": [1, {"b": 2}]}, [p, _])]),
}
