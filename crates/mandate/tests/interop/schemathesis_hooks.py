"""Hooks for the schemathesis run of crates/mandate/tests/e2e/schemathesis.rs (loaded
through SCHEMATHESIS_HOOKS).

`POST /ssf/events` takes a Security Event Token as `application/secevent+jwt` (RFC
8417), a compact JWS: text on the wire, which schemathesis has no serializer for. It is
sent as text/plain would be, so the operation is tested, not skipped with an error.
"""

import schemathesis

schemathesis.serializer.alias("application/secevent+jwt", "text/plain")
