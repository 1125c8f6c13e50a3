package example

public_network contains net.id if {
    some net in input.networks
    net.public
}

shell_accessible contains server.id if {
    some server in input.servers
    "telnet" in server.protocols
}

port_networks[port.id] := port.network if some port in input.ports

servers_on(net_id) := {s.id |
    some s in input.servers
    some p in s.ports
    some port in input.ports
    port.id == p
    port.network == net_id
}

on_net1 := servers_on("net1")
