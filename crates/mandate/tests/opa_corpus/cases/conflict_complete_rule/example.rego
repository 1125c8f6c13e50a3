package example

default user_role := "guest"

user_role := "admin" if "admin" in input.groups
user_role := "dev" if "dev" in input.groups
