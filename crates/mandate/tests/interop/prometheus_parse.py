"""Reads a Prometheus text exposition on stdin with prometheus_client's own parser
(text_string_to_metric_families, the Prometheus project's Python client) and prints
what it read as JSON: one object per family with its type and samples. A text the
parser refuses makes it raise, and this script exit non-zero."""

import json
import math
import sys

from prometheus_client.parser import text_string_to_metric_families


def number(v: float):
    """A finite value as itself; +Inf, -Inf and NaN (valid in Prometheus, not in JSON)
    as Prometheus writes them."""
    if math.isfinite(v):
        return v
    if math.isnan(v):
        return "NaN"
    return "+Inf" if v > 0 else "-Inf"


def main() -> None:
    text = sys.stdin.read()
    families = []
    for f in text_string_to_metric_families(text):
        families.append(
            {
                "name": f.name,
                "type": f.type,
                "documentation": f.documentation,
                "samples": [
                    {"name": s.name, "labels": s.labels, "value": number(s.value)}
                    for s in f.samples
                ],
            }
        )
    print(json.dumps(families, allow_nan=False))


if __name__ == "__main__":
    main()
