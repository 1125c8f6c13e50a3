package broken

allow if {
    input.x ==
}
