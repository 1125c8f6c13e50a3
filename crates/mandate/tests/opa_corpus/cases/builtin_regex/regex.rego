package builtins.regex

results := {
    "match": regex.match(`^[a-z]+-[0-9]+$`, "web-42"),
    "no_match": regex.match(`^[a-z]+$`, "web-42"),
    "is_valid": regex.is_valid(`(unclosed`),
    "split": regex.split(` *, *`, "a , b,c"),
    "find_n": regex.find_n(`[0-9]+`, "a1b22c333", -1),
    "find_n_2": regex.find_n(`[0-9]+`, "a1b22c333", 2),
    "submatch": regex.find_all_string_submatch_n(`([a-z]+)@([a-z]+)\.com`, "ann@x.com, bo@y.com", -1),
    "replace": regex.replace("agent-1 agent-22", `agent-([0-9]+)`, "a$1"),
    "template": regex.template_match("urn:foo:{.*}", "urn:foo:bar:baz", "{", "}"),
}

# Perl character classes, as authorization policies write them.
perl_classes := [
    regex.match(`^[a-z]+-\d+$`, "web-42"),
    regex.split(`\s*,\s*`, "a , b,c"),
    regex.find_all_string_submatch_n(`(\w+)@(\w+)\.com`, "ann@x.com, bo@y.com", -1),
]
