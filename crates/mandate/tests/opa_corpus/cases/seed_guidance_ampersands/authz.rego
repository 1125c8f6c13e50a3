package http.authz

default allow := false

allow if {
    input.user_role == "data_analyst" && input.action == "read"
}
