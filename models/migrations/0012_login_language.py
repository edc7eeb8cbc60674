"""The language a login chose on its profile (issue 21): "" until it chooses, then "en" or
"es"; emails and text messages to it go out in that language."""

from peewee import CharField

from models.migrations import add_column


def upgrade(database, migrator):
    add_column(database, migrator, "user", "language", CharField(max_length=10, default=""))
