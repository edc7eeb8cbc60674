"""Encrypt authenticator keys that a database still holds in plain text.

TwoStep has encrypted keys at rest from its first release, but a database imported from
elsewhere (or a row written by hand) may hold a plain base32 key. Fernet tokens all start with
"gAAAAA"; anything else is a plain key and is encrypted under the first ENCRYPTION_KEYS key.
No schema change: only data.
"""

from flask import has_app_context
from peewee import Table

from models import crypto

FERNET_PREFIX = "gAAAAA"
TABLES = ("verification_method", "pending_setup")


def plain_keys(database, name: str) -> list[tuple[int, str]]:
    """(id, secret) of the rows of `name` whose secret is not an encrypted token."""
    table = Table(name, ("id", "secret")).bind(database)
    rows = table.select(table.id, table.secret).where(table.secret != "").tuples()
    return [(row_id, secret) for row_id, secret in rows if not secret.startswith(FERNET_PREFIX)]


def upgrade(database, migrator):
    found = {name: plain_keys(database, name) for name in TABLES}
    if not any(found.values()):
        return
    if not has_app_context():
        raise RuntimeError(
            "Plain authenticator keys need encrypting with the app's ENCRYPTION_KEYS: "
            "run `flask db upgrade`."
        )
    for name, rows in found.items():
        table = Table(name, ("id", "secret")).bind(database)
        for row_id, secret in rows:
            table.update(secret=crypto.encrypt(secret)).where(table.id == row_id).execute()
