package builtins.net_more

intersects := net.cidr_intersects("192.168.0.0/16", "192.168.1.0/24")
