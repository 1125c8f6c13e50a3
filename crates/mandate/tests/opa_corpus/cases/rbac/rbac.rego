package rbac.authz

# user-role assignments and role-permission assignments live in data.json

default allow := false

allow if {
    # lookup the list of roles for the user
    some role in data.user_roles[input.user]
    # lookup the permissions list for role r
    some grant in data.role_grants[role]
    # check if the permission granted to r matches the user's request
    input.action == grant.action
    input.type == grant.type
}
