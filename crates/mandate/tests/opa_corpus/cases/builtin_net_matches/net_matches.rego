package builtins.net_matches

contains_matches := net.cidr_contains_matches(["10.0.0.0/8", "192.168.0.0/16"], ["10.1.1.1", "8.8.8.8", "192.168.3.4"])

merge := net.cidr_merge(["192.0.128.0/24", "192.0.129.0/24"])
