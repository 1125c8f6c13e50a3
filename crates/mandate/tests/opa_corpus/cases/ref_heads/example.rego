package example

fruit.apple.color := "red"
fruit.banana.color := "yellow"

users[name].role := role if {
    some name, role in input.roles
}

default limits.max := 10
limits.max := 100 if input.premium
