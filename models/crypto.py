"""Secrets at rest: authenticator keys are encrypted with rotatable Fernet keys.

`ENCRYPTION_KEYS` holds comma-separated Fernet keys: the first encrypts, all of them decrypt,
so a new key is put first and the old ones stay until `rotate()` has re-encrypted every token.
Without it (development, tests) one key is derived from SECRET_KEY; production refuses to
start without it (app.py).
"""

import base64
from dataclasses import dataclass

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from flask import current_app

_CACHE = "twostep.crypto"


class DecryptionError(ValueError):
    """The token was not made with any configured key, or it was altered."""


def derive_key(label: str) -> bytes:
    """32 bytes derived from SECRET_KEY for one purpose only (HKDF-SHA256, `label` as info),
    so the keys for different purposes are unrelated."""
    secret = current_app.config["SECRET_KEY"]
    if isinstance(secret, str):
        secret = secret.encode()
    kdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=f"twostep {label}".encode())
    return kdf.derive(secret)


def parse_keys(setting: str) -> list[Fernet]:
    """The Fernet keys of an ENCRYPTION_KEYS value, first one first.

    Raises ValueError saying which key is wrong (by position, never by value).
    """
    values = [value.strip() for value in setting.split(",") if value.strip()]
    if not values:
        raise ValueError("it holds no key")
    keys = []
    for position, value in enumerate(values, start=1):
        try:
            keys.append(Fernet(value))
        except ValueError:
            raise ValueError(
                f"key {position} is not a Fernet key (32 url-safe base64-encoded bytes)"
            ) from None
    return keys


def _cipher() -> MultiFernet:
    """The app's MultiFernet, built once per app and rebuilt if its settings change."""
    config = current_app.config
    source = (config.get("ENCRYPTION_KEYS") or "", config["SECRET_KEY"])
    cached = current_app.extensions.get(_CACHE)
    if cached is None or cached[0] != source:
        if source[0]:
            keys = parse_keys(source[0])
        else:
            keys = [Fernet(base64.urlsafe_b64encode(derive_key("encryption")))]
        cached = (source, MultiFernet(keys))
        current_app.extensions[_CACHE] = cached
    return cached[1]


def encrypt(plaintext: str) -> str:
    """Encrypt `plaintext` under the first key; the token is safe to store."""
    return _cipher().encrypt(plaintext.encode()).decode()


def decrypt(token: str) -> str:
    """The plaintext of a token made with any configured key; DecryptionError otherwise."""
    try:
        return _cipher().decrypt(token.encode()).decode()
    except InvalidToken:
        raise DecryptionError(
            "The secret could not be decrypted with the configured keys."
        ) from None


def rotate(token: str) -> str:
    """The same secret re-encrypted under the first key (after a new key is put first)."""
    try:
        return _cipher().rotate(token.encode()).decode()
    except InvalidToken:
        raise DecryptionError(
            "The secret could not be decrypted with the configured keys."
        ) from None


@dataclass(frozen=True)
class KeyCheck:
    """How many of a sample of stored tokens the configured keys open."""

    checked: int
    unreadable: int

    @property
    def none_open(self) -> bool:
        return self.checked > 0 and self.unreadable == self.checked

    @property
    def some_dont_open(self) -> bool:
        return self.unreadable > 0

    def problem(self, what: str) -> str:
        """A sentence for the operator (never a key or a token)."""
        return (
            f"{self.unreadable} of the {self.checked} newest stored {what} can't be opened with "
            "ENCRYPTION_KEYS: this instance's key list is wrong or out of date. Give every "
            "instance the same ENCRYPTION_KEYS (the new key first, the old ones after it)."
        )


def check(tokens: list[str]) -> KeyCheck:
    """Test-decrypt `tokens` with the configured keys (at start, to catch a wrong key list)."""
    unreadable = 0
    for token in tokens:
        try:
            decrypt(token)
        except DecryptionError:
            unreadable += 1
    return KeyCheck(len(tokens), unreadable)
