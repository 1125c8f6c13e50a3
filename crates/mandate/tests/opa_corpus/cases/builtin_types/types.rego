package builtins.types

values := [null, true, 1, 1.5, "s", [1], {"k": 1}, {1}]

names := [type_name(v) | some v in values]

checks := {
    "is_string": [is_string("s"), is_string(1)],
    "is_number": is_number(1.5),
    "is_boolean": is_boolean(false),
    "is_array": is_array([]),
    "is_set": is_set(set()),
    "is_object": is_object({}),
    "is_null": is_null(null),
}

equal_numbers := 1 == 1.0
