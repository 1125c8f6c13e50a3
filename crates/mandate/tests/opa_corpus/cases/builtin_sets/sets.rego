package builtins.sets

a := {1, 2, 3}
b := {2, 3, 4}

results := {
    "and": a & b,
    "or": a | b,
    "minus": a - b,
    "intersection": intersection({a, b, {3, 5}}),
    "union": union({a, b, {9}}),
    "mixed_scalars": {"s", [1], 1, {"k": 1}, true, null},
    "objects": {{"b": 1}, {"a": 2}, {"a": 1, "b": 0}},
    "strings": {"b", "B", "a", "aa", "é"},
    "numbers": {10, 9.5, -1, 2, 0.25},
}

# OPA orders objects before sets.
objects_and_sets := {{"k": 1}, {2}, {"a": {1}}, {{"z": 0}}}
