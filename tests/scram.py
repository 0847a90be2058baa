"""SCRAM-SHA-256 computed from the RFCs' own definitions, to check the verifiers the depot sends.

Written from RFC 5802 §2.2 and §3 (``Hi`` as its HMAC chain, not ``hashlib.pbkdf2_hmac``, which
the code under test uses) and held to RFC 7677 §3's example exchange, so an error shared by the
code and this check would still fail on the RFC's published figures.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass

# RFC 7677 §3: user "user", password "pencil", and the exchange that logs it in.
RFC7677_PASSWORD = "pencil"
RFC7677_SALT = base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ==")
RFC7677_AUTH_MESSAGE = (
    b"n=user,r=rOprNGfwEbeRWgbNEkqO,"
    b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,"
    b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
)
RFC7677_CLIENT_PROOF = base64.b64decode("dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
RFC7677_SERVER_SIGNATURE = base64.b64decode("6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")


def _hmac(key: bytes, message: bytes) -> bytes:
    return hmac.new(key, message, hashlib.sha256).digest()


def hi(password: bytes, salt: bytes, iterations: int) -> bytes:
    """RFC 5802 §2.2: U1 = HMAC(str, salt + INT(1)), Ui = HMAC(str, Ui-1), Hi = U1 ^ … ^ Ui."""
    block = _hmac(password, salt + (1).to_bytes(4, "big"))
    result = int.from_bytes(block, "big")
    for _ in range(iterations - 1):
        block = _hmac(password, block)
        result ^= int.from_bytes(block, "big")
    return result.to_bytes(len(block), "big")


@dataclass(frozen=True)
class Verifier:
    """What postgres stores: ``SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>``."""

    iterations: int
    salt: bytes
    stored_key: bytes
    server_key: bytes

    @classmethod
    def parse(cls, text: str) -> Verifier:
        method, iterations_salt, keys = text.split("$")
        assert method == "SCRAM-SHA-256"
        iterations, salt = iterations_salt.split(":")
        stored, server = keys.split(":")
        return cls(int(iterations), *(base64.b64decode(v) for v in (salt, stored, server)))

    def admits(self, password: str) -> bool:
        """RFC 5802 §3: the keys a client holding ``password`` derives from this salt."""
        salted = hi(password.encode(), self.salt, self.iterations)
        client_key = _hmac(salted, b"Client Key")
        return (hashlib.sha256(client_key).digest(), _hmac(salted, b"Server Key")) == (
            self.stored_key,
            self.server_key,
        )

    def logs_in_rfc7677_client(self) -> bool:
        """The server side of RFC 7677 §3's exchange with these keys: the client's proof checks
        out (H(proof ^ ClientSignature) == StoredKey) and the server signs as the RFC shows."""
        signature = _hmac(self.stored_key, RFC7677_AUTH_MESSAGE)
        client_key = bytes(a ^ b for a, b in zip(RFC7677_CLIENT_PROOF, signature, strict=True))
        proof_holds = hashlib.sha256(client_key).digest() == self.stored_key
        return proof_holds and _hmac(self.server_key, RFC7677_AUTH_MESSAGE) == (
            RFC7677_SERVER_SIGNATURE
        )
