package builtins.strings

s := input.s

results := {
    "concat": concat("/", ["a", "b", "c"]),
    "contains": contains(s, "World"),
    "startswith": startswith(s, "Hello"),
    "endswith": endswith(s, "!"),
    "lower": lower(s),
    "upper": upper(s),
    "split": split("a,b,,c", ","),
    "replace": replace(s, "l", "L"),
    "trim": trim("  xx  ", " "),
    "trim_space": trim_space("\t padded \n"),
    "trim_prefix": trim_prefix("agent:42", "agent:"),
    "trim_suffix": trim_suffix("file.rego", ".rego"),
    "substring": substring(s, 7, 5),
    "indexof": indexof(s, "o"),
    "indexof_n": indexof_n(s, "o"),
    "format_int": format_int(255, 16),
    "strings_reverse": strings.reverse("abc"),
    "replace_n": strings.replace_n({"a": "1", "b": "2"}, "abcab"),
    "count_unicode": count("héllo"),
    "any_prefix_match": strings.any_prefix_match(["/api/v1/x", "/other"], "/api"),
    "any_suffix_match": strings.any_suffix_match("file.rego", [".json", ".rego"]),
}
