package builtins.time

t := time.parse_rfc3339_ns("2024-02-29T13:45:30Z")

results := {
    "rfc3339_ns": t,
    "rfc3339_offset": time.parse_rfc3339_ns("2024-02-29T13:45:30+02:00"),
    "parse_ns_layout": time.parse_ns("2006-01-02", "2024-02-29"),
    "date": time.date(t),
    "clock": time.clock(t),
    "weekday": time.weekday(t),
    "add_date": time.add_date(t, 0, 1, 1),
    "diff": time.diff(time.parse_rfc3339_ns("2025-03-01T00:00:00Z"), t),
    "format": time.format([t, "UTC", "2006-01-02T15:04:05Z07:00"]),
    "parse_duration_ns": time.parse_duration_ns("1h30m"),
    "date_tz": time.date([t, "America/New_York"]),
}

within_window if {
    start := time.parse_rfc3339_ns(input.window.start)
    end := time.parse_rfc3339_ns(input.window.end)
    at := time.parse_rfc3339_ns(input.at)
    start <= at
    at < end
}
