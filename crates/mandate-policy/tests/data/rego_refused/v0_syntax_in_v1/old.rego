package old

allow { input.x == 1 }
