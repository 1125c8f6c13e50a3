package example

pi := 3.14159
rect := {"width": 2, "height": 4}
greeting := "hello"
empty_set := set()

t if {
    x := 42
    y := 41
    x > y
}

f if 1 > 2

area := rect.width * rect.height
