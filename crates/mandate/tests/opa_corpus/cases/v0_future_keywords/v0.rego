package legacy

import future.keywords.in
import future.keywords.if

default allow = false

allow if "admin" in input.roles

roles_by_user[user] = roles {
    some user
    roles := input.assignments[user]
}

double(x) = y {
    y := x * 2
}

doubled = double(21)

groups[g] {
    g := input.assignments[_][_]
}
