package builtins.net

allowed_networks := ["10.0.0.0/8", "192.168.0.0/16", "fd00::/8"]

internal if {
    some cidr in allowed_networks
    net.cidr_contains(cidr, input.ip)
}

results := {
    "v4_contains_ip": net.cidr_contains("10.0.0.0/8", "10.1.2.3"),
    "v4_not_contains": net.cidr_contains("10.0.0.0/8", "11.0.0.1"),
    "v4_contains_cidr": net.cidr_contains("10.0.0.0/8", "10.1.0.0/16"),
    "v6_contains": net.cidr_contains("fd00::/8", "fd12:3456::1"),
    "is_valid": [net.cidr_is_valid("10.0.0.0/8"), net.cidr_is_valid("10.0.0.0/33")],
    "expand": net.cidr_expand("192.168.1.0/30"),
}
