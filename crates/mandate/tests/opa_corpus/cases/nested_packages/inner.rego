package app.rbac

default allow := false

user_roles := {"alice": ["admin"], "bob": ["reader"]}

allow if "admin" in user_roles[input.user]
