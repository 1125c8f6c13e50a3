package example

default allow := false

allow if {
    count(violation) == 0
}

violation contains server.id if {
    some server
    public_server[server]
    server.protocols[_] == "http"
}

violation contains server.id if {
    server := input.servers[_]
    server.protocols[_] == "telnet"
}

public_server contains server if {
    some i, j
    server := input.servers[_]
    server.ports[_] == input.ports[i].id
    input.ports[i].network == input.networks[j].id
    input.networks[j].public
}
