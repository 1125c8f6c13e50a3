package example

no_telnet_exposed if {
    every server in input.servers {
        every protocol in server.protocols {
            "telnet" != protocol
        }
    }
}

all_ports_known if {
    every server in input.servers {
        every p in server.ports {
            some port in input.ports
            port.id == p
        }
    }
}

every_over_key_value if {
    every k, v in {"a": 1, "b": 2} {
        is_string(k)
        v > 0
    }
}
