package example

instances contains instance if {
    some server in input.servers
    instance := {"address": server.address, "name": server.name}
}

instances contains instance if {
    some container in input.containers
    instance := {"address": container.ipaddress, "name": container.name}
}

is_admin if "admin" in input.roles
is_admin if input.user == "root"
