"""What a request has read already, kept for the rest of that request only.

The hot pages read the signed-in person's methods and memberships several times (the window,
its tabs, the policy checks); they are read once instead, and any write to those tables (by
save, create, update, delete or insert_many) forgets them, so nothing
stale is ever seen. Outside an app context nothing is kept.
"""

from flask import g, has_app_context

G_KEY = "request_cache"  # popped at the start of every request (app.py)


def remembered(table: str, user_id):
    """What this request kept for (`table`, `user_id`), or None."""
    if not has_app_context():
        return None
    return g.get(G_KEY, {}).get((table, user_id))


def remember(table: str, user_id, value):
    if has_app_context():
        g.setdefault(G_KEY, {})[(table, user_id)] = value
    return value


def forget(table: str) -> None:
    if has_app_context():
        kept = g.get(G_KEY)
        if kept:
            for key in [key for key in kept if key[0] == table]:
                del kept[key]


class ForgetOnWrite:
    """A model mixin: every write to its table forgets what this request kept from it (the
    ways this code writes: create and save go through insert and update, bulk loads through
    insert_many)."""

    @classmethod
    def _forget(cls):
        forget(cls._meta.table_name)

    @classmethod
    def insert(cls, *args, **kwargs):
        cls._forget()
        return super().insert(*args, **kwargs)

    @classmethod
    def insert_many(cls, *args, **kwargs):
        cls._forget()
        return super().insert_many(*args, **kwargs)

    @classmethod
    def update(cls, *args, **kwargs):
        cls._forget()
        return super().update(*args, **kwargs)

    @classmethod
    def delete(cls):
        cls._forget()
        return super().delete()
