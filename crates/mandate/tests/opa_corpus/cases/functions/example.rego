package example

trim_and_split(s) := x if {
    t := trim(s, " ")
    x := split(t, ".")
}

r := trim_and_split("   foo.bar ")

# Several definitions: the arguments select one.
q(1, x) := y if y := x
q(2, x) := y if y := x * 4

one := q(1, 2)
two := q(2, 2)
three := q(3, 2)

default first_name(_) := "Unknown"
first_name(full_name) := split(full_name, " ")[0] if full_name != ""

named := first_name("Jane Doe")
unnamed := first_name("")

# A function defined by a boolean body.
is_even(n) if n % 2 == 0
evens := [n | some n in numbers.range(1, 6); is_even(n)]
