package builtins.encoding

results := {
    "base64_encode": base64.encode("agent:secret"),
    "base64_decode": base64.decode("YWdlbnQ6c2VjcmV0"),
    "base64_is_valid": [base64.is_valid("YWdlbnQ6c2VjcmV0"), base64.is_valid("%%%")],
    "base64url_encode": base64url.encode("??>>"),
    "base64url_encode_no_pad": base64url.encode_no_pad("a"),
    "base64url_decode": base64url.decode("Pz8-Pg=="),
    "json_marshal": json.marshal({"b": [1, 2.5, "x"], "a": null}),
    "json_unmarshal": json.unmarshal(`{"z": {"y": [true, 1e3]}}`),
    "json_is_valid": [json.is_valid("{}"), json.is_valid("{")],
    "hex_encode": hex.encode("hi"),
    "hex_decode": hex.decode("6869"),
    "urlquery_encode": urlquery.encode("a b&c=d"),
    "urlquery_encode_object": urlquery.encode_object({"q": "x y", "tags": ["a", "b"]}),
    "urlquery_decode": urlquery.decode("a%20b%26c"),
    "urlquery_decode_object": urlquery.decode_object("a=1&b=2&a=3"),
}
