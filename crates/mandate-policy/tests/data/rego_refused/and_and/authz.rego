package http.authz

default allow := false

allow if {
    input.request_source == "internal_network" && input.agent.verified
}
