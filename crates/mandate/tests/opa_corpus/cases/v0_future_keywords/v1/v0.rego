package legacy

import future.keywords.in
import future.keywords.if

default allow := false

allow if "admin" in input.roles

roles_by_user[user] := roles if {
    some user
    roles := input.assignments[user]
}

double(x) := y if {
    y := x * 2
}

doubled := double(21)

groups contains g if {
    g := input.assignments[_][_]
}
