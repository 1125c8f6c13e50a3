package new

allow if input.x == 1

deny contains "no" if input.x == 2
