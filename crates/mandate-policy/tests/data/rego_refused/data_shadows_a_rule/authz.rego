package http.authz

default allow := false

allow if input.user == "alice"

teams := {"a"}
