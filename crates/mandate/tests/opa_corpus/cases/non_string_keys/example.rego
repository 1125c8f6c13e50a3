package example

by_number := {1: "one", 2.5: "two and a half"}

by_bool := {true: "yes", false: "no"}

by_array := {[1, "a"]: "pair"}
