package builtins.jwt

claims := payload if {
    [_, payload, _] := io.jwt.decode(input.token)
}

is_admin if claims.role == "admin"
