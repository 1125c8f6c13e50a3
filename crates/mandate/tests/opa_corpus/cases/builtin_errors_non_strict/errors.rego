package builtins.errors

quotient := 1 / input.n

parsed := to_number(input.s)

decoded := json.unmarshal(input.s)
