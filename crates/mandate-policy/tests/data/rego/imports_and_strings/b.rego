package b

import future.keywords.in
import future.keywords.if

allow if "x" in input.xs
