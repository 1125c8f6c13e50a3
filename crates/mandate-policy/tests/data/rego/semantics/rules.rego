package app

# A complete rule without a default: undefined unless its body holds.
admin if input.role == "admin"

# A partial set: a set of the values, answered as an array.
names contains name if {
    some user in input.users
    name := user.name
}

# A partial object.
by_id[user.id] := user.name if {
    some user in input.users
}

# A function is not a document.
double(x) := x * 2

doubled := double(21)

# A nested rule path.
limits.max := 10

# A builtin error is undefined, as OPA's Data API answers by default.
broken := to_number("nope")

conflict := x if {
    some x in input.values
}
