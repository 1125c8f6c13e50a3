package acme.policy

allow if input.user in data.acme.users

user_count := count(data.acme.users)
