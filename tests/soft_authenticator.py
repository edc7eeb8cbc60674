"""A software WebAuthn authenticator for the tests: real ceremonies made in Python.

It holds an EC P-256 key (ES256) and answers registration options with attestation "none"
(clientDataJSON, authenticatorData, a CBOR attestationObject) and authentication options with
a signed assertion, exactly as a browser would send them to the server (base64url JSON).
Arguments let a test lie about the origin, the rp id, the challenge or the counter.
"""

import hashlib
import json
import secrets

import cbor2
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from webauthn.helpers import base64url_to_bytes, bytes_to_base64url

UP, UV, AT = 0x01, 0x04, 0x40


class SoftAuthenticator:
    """One credential (a security key) with its own private key and signature counter."""

    def __init__(self, counter: int = 0):
        self.private_key = ec.generate_private_key(ec.SECP256R1())
        self.credential_id = secrets.token_bytes(32)
        self.counter = counter

    @property
    def id(self) -> str:
        return bytes_to_base64url(self.credential_id)

    def _cose_public_key(self) -> bytes:
        numbers = self.private_key.public_key().public_numbers()
        return cbor2.dumps(
            {
                1: 2,  # kty: EC2
                3: -7,  # alg: ES256
                -1: 1,  # crv: P-256
                -2: numbers.x.to_bytes(32, "big"),
                -3: numbers.y.to_bytes(32, "big"),
            }
        )

    @staticmethod
    def _client_data(kind: str, challenge: str, origin: str) -> bytes:
        return json.dumps(
            {"type": kind, "challenge": challenge, "origin": origin, "crossOrigin": False}
        ).encode()

    def create(self, options, origin: str, rp_id: str | None = None, challenge: str | None = None):
        """The browser's JSON for navigator.credentials.create() answered by this key."""
        options = json.loads(options) if isinstance(options, str) else options
        rp_id = rp_id or options["rp"]["id"]
        client_data = self._client_data(
            "webauthn.create", challenge or options["challenge"], origin
        )
        auth_data = (
            hashlib.sha256(rp_id.encode()).digest()
            + bytes([UP | UV | AT])
            + self.counter.to_bytes(4, "big")
            + bytes(16)  # aaguid
            + len(self.credential_id).to_bytes(2, "big")
            + self.credential_id
            + self._cose_public_key()
        )
        attestation = cbor2.dumps({"fmt": "none", "attStmt": {}, "authData": auth_data})
        return {
            "id": self.id,
            "rawId": self.id,
            "type": "public-key",
            "clientExtensionResults": {},
            "response": {
                "clientDataJSON": bytes_to_base64url(client_data),
                "attestationObject": bytes_to_base64url(attestation),
                "transports": ["usb"],
            },
        }

    def get(
        self,
        options,
        origin: str,
        rp_id: str | None = None,
        challenge: str | None = None,
        counter: int | None = None,
    ):
        """The browser's JSON for navigator.credentials.get() answered by this key; the counter
        goes up by one unless `counter` says what to report."""
        options = json.loads(options) if isinstance(options, str) else options
        rp_id = rp_id or options["rpId"]
        if counter is None:
            self.counter += 1
            counter = self.counter
        client_data = self._client_data("webauthn.get", challenge or options["challenge"], origin)
        auth_data = (
            hashlib.sha256(rp_id.encode()).digest() + bytes([UP | UV]) + counter.to_bytes(4, "big")
        )
        signature = self.private_key.sign(
            auth_data + hashlib.sha256(client_data).digest(), ec.ECDSA(hashes.SHA256())
        )
        return {
            "id": self.id,
            "rawId": self.id,
            "type": "public-key",
            "clientExtensionResults": {},
            "response": {
                "clientDataJSON": bytes_to_base64url(client_data),
                "authenticatorData": bytes_to_base64url(auth_data),
                "signature": bytes_to_base64url(signature),
            },
        }


def tampered(credential: dict) -> dict:
    """The same assertion with one bit of its signature flipped."""
    signature = bytearray(base64url_to_bytes(credential["response"]["signature"]))
    signature[-1] ^= 0x01
    changed = json.loads(json.dumps(credential))
    changed["response"]["signature"] = bytes_to_base64url(bytes(signature))
    return changed
