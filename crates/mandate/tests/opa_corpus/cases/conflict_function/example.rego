package example

level(x) := "high" if x > 5
level(x) := "low" if x < 10

l := level(input.n)
