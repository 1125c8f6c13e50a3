package a

import rego.v1

msg := "a && b"

allow if input.x == 1
