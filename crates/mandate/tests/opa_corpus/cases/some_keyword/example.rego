package example

sites := [
    {"name": "prod"},
    {"name": "smoke1"},
    {"name": "dev"},
]

# `some` declares i local, as the docs' example does.
indices contains i if {
    some i
    sites[i].name == "smoke1"
}

pairs contains [k, v] if {
    some k, v in {"a": 1, "b": 2}
}

# Pattern matching in `some … in`: only the value "developer" binds.
developers contains name if {
    some name, "developer" in {"alice": "developer", "bob": "developer", "charlie": "manager"}
}
