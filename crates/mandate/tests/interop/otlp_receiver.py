"""A small OTLP/HTTP traces receiver for the traces end-to-end test (e2e/traces.rs).

Usage: python otlp_receiver.py OUT.jsonl [FAIL_FIRST]

Listens on a free loopback port and prints `port N` once ready. Each POST to
/v1/traces must be `Content-Type: application/json`, an OTLP JSON-encoded
ExportTraceServiceRequest: its trace and span ids must be hex strings of exactly 16 and
8 bytes (the OTLP JSON deviation from protobuf's base64; they are turned into base64
for protobuf's parser), and the whole is parsed with protobuf's json_format.Parse into
opentelemetry-proto's ExportTraceServiceRequest, which refuses unknown fields, enum
names where numbers are due, and wrong types. A request that fails any of it is
answered 400 and written to OUT.jsonl as {"error": ...}; each span of one that passes
is written as one JSON line (ids in hex, attributes as a flat object), and it is
answered 200 with an empty ExportTraceServiceResponse. The first FAIL_FIRST requests
(default 0) are answered 503 with Retry-After: 1 before being read, to check that the
exporter retries them.
"""

import base64
import json
import re
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
)

OUT = sys.argv[1]
FAIL_FIRST = int(sys.argv[2]) if len(sys.argv) > 2 else 0
LOCK = threading.Lock()
SEEN = {"requests": 0}
HEX = re.compile(r"^[0-9a-fA-F]*$")


def hex_to_b64(obj, key, size, required):
    v = obj.get(key)
    if v is None or v == "":
        if required:
            raise ValueError(f"{key} missing")
        return
    if not isinstance(v, str) or not HEX.match(v) or len(v) != 2 * size:
        raise ValueError(f"{key} is not {size} bytes of hex: {v!r}")
    obj[key] = base64.b64encode(bytes.fromhex(v)).decode()


def value_of(any_value):
    kind = any_value.WhichOneof("value")
    return getattr(any_value, kind) if kind else None


def write(line):
    with LOCK:
        with open(OUT, "a", encoding="utf-8") as f:
            f.write(json.dumps(line) + "\n")


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def answer(self, status, body, extra=()):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        raw = self.rfile.read(length)
        with LOCK:
            SEEN["requests"] += 1
            n = SEEN["requests"]
        if n <= FAIL_FIRST:
            write({"refused": 503})
            self.answer(503, {"message": "try again"}, [("Retry-After", "1")])
            return
        try:
            if self.path != "/v1/traces":
                raise ValueError(f"path {self.path}")
            ctype = self.headers.get("Content-Type", "")
            if ctype.split(";")[0].strip() != "application/json":
                raise ValueError(f"content type {ctype!r}")
            doc = json.loads(raw)
            for rs in doc.get("resourceSpans", []):
                for ss in rs.get("scopeSpans", []):
                    for s in ss.get("spans", []):
                        hex_to_b64(s, "traceId", 16, True)
                        hex_to_b64(s, "spanId", 8, True)
                        hex_to_b64(s, "parentSpanId", 8, False)
            req = ExportTraceServiceRequest()
            json_format.Parse(json.dumps(doc), req)
        except Exception as e:  # noqa: BLE001 - any failure is the exporter's
            write({"error": f"{type(e).__name__}: {e}"})
            self.answer(400, {"message": str(e)})
            return
        for rs in req.resource_spans:
            resource = {a.key: value_of(a.value) for a in rs.resource.attributes}
            for ss in rs.scope_spans:
                for s in ss.spans:
                    write(
                        {
                            "resource": resource,
                            "scope": ss.scope.name,
                            "trace_id": s.trace_id.hex(),
                            "span_id": s.span_id.hex(),
                            "parent_span_id": s.parent_span_id.hex(),
                            "trace_state": s.trace_state,
                            "name": s.name,
                            "kind": s.kind,
                            "start": s.start_time_unix_nano,
                            "end": s.end_time_unix_nano,
                            "status": s.status.code,
                            "attributes": {a.key: value_of(a.value) for a in s.attributes},
                        }
                    )
        self.answer(200, {})


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(f"port {server.server_address[1]}", flush=True)
server.serve_forever()
