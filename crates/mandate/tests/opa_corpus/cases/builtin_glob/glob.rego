package builtins.glob

results := {
    "dot_delimited": glob.match("*.github.com", ["."], "api.github.com"),
    "dot_delimited_deep": glob.match("*.github.com", ["."], "api.cdn.github.com"),
    "super_wildcard": glob.match("api.**.com", ["."], "api.cdn.github.com"),
    "default_delimiter": glob.match("*:github:com", [], "api:github:com"),
    "no_delimiters": glob.match("*hub.com", null, "api.github.com"),
    "char_class": glob.match("[a-c]at", [], "bat"),
    "alternatives": glob.match("{cat,dog}", [], "dog"),
    "quote_meta": glob.quote_meta("*.github.com"),
    "path": glob.match("/api/*/users", ["/"], "/api/v1/users"),
    "path_deep": glob.match("/api/*/users", ["/"], "/api/v1/x/users"),
}
