package builtins.arrays

results := {
    "concat": array.concat([1, 2], [3]),
    "slice": array.slice([1, 2, 3, 4, 5], 1, 3),
    "slice_clamped": array.slice([1, 2, 3], -1, 10),
    "reverse": array.reverse(["a", "b", "c"]),
    "sort": sort([3, 1, "b", "a", null, true, [0]]),
    "sort_set": sort({"z", "y"}),
    "flatten": [x | some row in [[1, 2], [3]]; some x in row],
}
