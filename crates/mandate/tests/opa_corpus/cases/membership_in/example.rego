package example

p := [x, y, z] if {
    x := 3 in [1, 2, 3]            # array
    y := 3 in {1, 2, 3}            # set
    z := 3 in {"foo": 1, "bar": 3} # object
}

q := [x, y] if {
    x := 2, 3 in [1, 2, 3]          # index, value of an array
    y := "foo", 1 in {"foo": 1}     # key, value of an object
}

not_in if not "admin" in input.roles

is_admin if "admin" in input.roles
