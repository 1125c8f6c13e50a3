package s

msg := "a && b"

allow if {
    input.x ==
}
