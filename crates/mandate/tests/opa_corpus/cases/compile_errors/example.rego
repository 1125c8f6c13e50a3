package example

allow if {
    x > 1
}
