"""Indexes for the hot queries and for housekeeping: the code send caps and cooldown (per
account and per destination, over the last hour), code expiry, and ended sessions."""

from models.migrations import add_index


def upgrade(database, migrator):
    add_index(database, migrator, "one_time_code", ("user_id", "created_at"))
    add_index(database, migrator, "one_time_code", ("destination", "created_at"))
    add_index(database, migrator, "one_time_code", ("expires_at",))
    add_index(database, migrator, "user_session", ("state", "created_at"))
    add_index(database, migrator, "user_session", ("last_seen_at",))
