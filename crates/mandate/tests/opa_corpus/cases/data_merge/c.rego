package acme.policy

# A second module in the same package: its rules join the first's.
deny contains "unknown user" if not allow
