package example

allow if input.user == "alice"
obj := {"a": {"b": 1}}
arr := ["x", "y"]
