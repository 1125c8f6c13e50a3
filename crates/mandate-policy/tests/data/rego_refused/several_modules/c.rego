package c

z := 1
