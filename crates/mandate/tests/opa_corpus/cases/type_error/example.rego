package example

n := "a" + 1
