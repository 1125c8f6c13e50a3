package old

allow { input.x == 1 }

deny["no"] { input.x == 2 }
