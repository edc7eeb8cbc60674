"""The mobile app's sessions (issue 19): a session row says who holds its token, a browser
("web", in its cookie) or the mobile app ("app", a bearer token), and the app's device name."""

from peewee import CharField

from models.migrations import add_column


def upgrade(database, migrator):
    add_column(
        database,
        migrator,
        "user_session",
        "kind",
        CharField(max_length=10, default="web"),
    )
    add_column(
        database,
        migrator,
        "user_session",
        "device_name",
        CharField(max_length=100, default=""),
    )
