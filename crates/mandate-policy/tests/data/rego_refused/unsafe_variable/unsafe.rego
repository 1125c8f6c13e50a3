package unsafe

allow if {
    user == "alice"
}
