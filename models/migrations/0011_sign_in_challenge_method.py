"""A sign-in between the password and the code remembers on its row which method it is
challenging (that lived in the browser's cookie), so the web's cookie and the mobile app's
bearer token name the same state."""

from peewee import IntegerField

from models.migrations import add_column


def upgrade(database, migrator):
    add_column(database, migrator, "user_session", "challenge_method", IntegerField(null=True))
