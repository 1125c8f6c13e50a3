package builtins.units

results := {
    "bytes_kib": units.parse_bytes("10KiB"),
    "bytes_kb": units.parse_bytes("10KB"),
    "bytes_plain": units.parse_bytes("512"),
    "parse_m": units.parse("250m"),
    "parse_k": units.parse("1.5k"),
    "parse_gi": units.parse("2Gi"),
}

within_quota if units.parse_bytes(input.request_size) <= units.parse_bytes("1MiB")
