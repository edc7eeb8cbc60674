"""Sends from before an admin's reset stop counting towards the send limits (Decisions 19):
the moment of the last reset, per login."""

from peewee import DateTimeField

from models.migrations import add_column


def upgrade(database, migrator):
    add_column(database, migrator, "user", "sends_counted_since", DateTimeField(null=True))
