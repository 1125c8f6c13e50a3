package example

hostnames contains name if {
    name := data.sites[_].servers[_].hostname
}

apps_by_hostname[hostname] := app if {
    some i
    server := data.sites[_].servers[_]
    hostname := server.hostname
    data.apps[i].servers[_] == server.name
    app := data.apps[i].name
}

region_counts[region] := n if {
    some site in data.sites
    region := site.region
    n := count([s | some s in data.sites; s.region == region])
}
