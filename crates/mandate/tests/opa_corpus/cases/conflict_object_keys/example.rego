package example

owners[name] := owner if {
    some r in input.resources
    name := r.name
    owner := r.owner
}
