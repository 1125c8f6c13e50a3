# The guidance's example, made valid Rego: its `&&` became one condition per line.
package http.authz

default allow := false

allow if {
    input.request_source == "internal_network"
    input.agent.verified == true
    input.action in data.allowed_actions
}
