package example

region := "west"

names := [name | some site in data.sites; site.region == region; name := site.name]

app_to_hostnames := {app.name: hostnames |
    some app in data.apps
    hostnames := [hostname |
        some name in app.servers
        some site in data.sites
        some server in site.servers
        server.name == name
        hostname := server.hostname
    ]
}

a := [1, 2, 3, 4, 3, 4, 3, 4, 5]
b := {x | some x in a}
squares := {x: sq | some x in b; sq := x * x}
nested := [[x, y] | some x in [1, 2]; some y in ["a", "b"]]
empty := [x | some x in a; x > 10]
