"""Helpers of the access-control tests (tests/auth/) that tests import (a conftest.py cannot be imported
reliably: see tests/lib/petrel_paths.py)."""
from __future__ import annotations

import mqttraw as m


def connack(port: int, client_id: str = "", version: int = 4, username: str | None = None,
            password: bytes | str | None = None) -> int:
    """The CONNACK reason code for a CONNECT with these credentials (the connection is then closed)."""
    if isinstance(password, str):
        password = password.encode()
    with m.RawClient(port, version=version) as c:
        c.send(m.connect(client_id, version=version, username=username, password=password))
        return c.expect(m.CONNACK).fields["reason"]


def jwt(claims: dict, alg: str = "HS256", key=None, header: dict | None = None) -> str:
    """A signed JSON Web Token: HS256 with `key` (bytes), RS256 / ES256 with `key` (a python3-cryptography private
    key object). Written here, independently of petrel's verifier."""
    import base64
    import hashlib
    import hmac
    import json

    def enc(b: bytes) -> bytes:
        return base64.urlsafe_b64encode(b).rstrip(b"=")

    signed = enc(json.dumps(header or {"alg": alg, "typ": "JWT"}).encode()) + b"." + enc(json.dumps(claims).encode())
    if alg == "HS256":
        sig = hmac.new(key, signed, hashlib.sha256).digest()
    else:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec, padding, utils
        if alg == "RS256":
            sig = key.sign(signed, padding.PKCS1v15(), hashes.SHA256())
        else:
            r, s = utils.decode_dss_signature(key.sign(signed, ec.ECDSA(hashes.SHA256())))
            sig = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    return (signed + b"." + enc(sig)).decode()
