package http.authz

default allow := false

allow if {
    input.user_role == "data_analyst"
    input.action == "read"
    input.resource == "customer_data"
    input.request_source == "internal_network"
}
