"""A Shared Signals transmitter made with PyJWT: the independent implementation of the
Security Event Tokens (RFC 8417, as SSF 1.0 profiles them) that Mandate's receiver
checks (crates/mandate/tests/e2e/ssf.rs).

  ssf_transmitter.py keygen DIR          writes DIR/key.pem and DIR/jwks.json (ES256, kid tx-1)
  ssf_transmitter.py sign KEY.pem CLAIMS  prints the SET of CLAIMS (JSON), typ secevent+jwt
"""

import json
import sys

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec


def keygen(out_dir):
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    with open(f"{out_dir}/key.pem", "wb") as f:
        f.write(pem)
    jwk = jwt.algorithms.ECAlgorithm.to_jwk(key.public_key(), as_dict=True)
    jwk.update({"kid": "tx-1", "alg": "ES256", "use": "sig"})
    with open(f"{out_dir}/jwks.json", "w") as f:
        json.dump({"keys": [jwk]}, f)


def sign(key_path, claims_json):
    with open(key_path, "rb") as f:
        key = serialization.load_pem_private_key(f.read(), password=None)
    claims = json.loads(claims_json)
    token = jwt.encode(
        claims, key, algorithm="ES256", headers={"typ": "secevent+jwt", "kid": "tx-1"}
    )
    print(token)


if __name__ == "__main__":
    if sys.argv[1] == "keygen":
        keygen(sys.argv[2])
    elif sys.argv[1] == "sign":
        sign(sys.argv[2], sys.argv[3])
    else:
        sys.exit(f"unknown command {sys.argv[1]}")
