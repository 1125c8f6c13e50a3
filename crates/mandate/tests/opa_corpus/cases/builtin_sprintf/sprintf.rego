package builtins.sprintf

results := [
    sprintf("%s is %d years", ["alice", 30]),
    sprintf("%v", [{"b": 2, "a": [1, "x"]}]),
    sprintf("%v|%v|%v", [1.5, true, null]),
    sprintf("%q", ["quoted"]),
    sprintf("%x", [255]),
    sprintf("%.2f", [3.14159]),
    sprintf("%v", [{1, 2}]),
]
