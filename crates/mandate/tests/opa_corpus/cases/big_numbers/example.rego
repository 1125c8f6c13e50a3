package example

big := 123456789012345678901234567890

big_sum := 18446744073709551615 + 1

input_echo := input.n
