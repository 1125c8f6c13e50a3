package http.authz

names := [n | some n in input.names]

allow if {
    input.role == "admin" || input.role == "owner"
}
