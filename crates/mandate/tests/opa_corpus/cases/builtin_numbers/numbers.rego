package builtins.numbers

results := {
    "div_exact": 10 / 4,
    "div_integral": 8 / 2,
    "rem": 7 % 3,
    "round": [round(2.5), round(-2.5)],
    "ceil_floor": [ceil(1.2), floor(-1.2)],
    "abs": abs(-3),
    "range": numbers.range(1, 4),
    "range_desc": numbers.range(3, 1),
    "sum": sum([1, 2, 3.5]),
    "product": product([2, 3, 4]),
    "max": max({1, 9, 3}),
    "min": min([4, -2, 8]),
    "count_set": count({"a", "b", "a"}),
    "count_object": count({"a": 1}),
    "to_number": [to_number("42"), to_number("0.5"), to_number(true), to_number(null)],
    "big_int": 9007199254740993 + 0,
    "bits": [bits.and(12, 10), bits.or(12, 10), bits.lsh(1, 4)],
}

# OPA computes with arbitrary-precision decimals.
decimal_product := 3 * 0.1

decimal_sum := 0.1 + 0.2
