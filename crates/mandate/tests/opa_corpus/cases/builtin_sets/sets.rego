package builtins.sets

a := {1, 2, 3}
b := {2, 3, 4}

results := {
    "and": a & b,
    "or": a | b,
    "minus": a - b,
    "intersection": intersection({a, b, {3, 5}}),
    "union": union({a, b, {9}}),
    "mixed_types": {null, true, 1, "s", [1], {"k": 1}, {2}},
    "objects": {{"b": 1}, {"a": 2}, {"a": 1, "b": 0}},
    "strings": {"b", "B", "a", "aa", "é"},
    "numbers": {10, 9.5, -1, 2, 0.25},
}
