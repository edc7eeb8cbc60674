"""The language a login chose on its profile (issue 21): "" until it chooses, then "en" or
"es"; emails and text messages to it go out in that language. The default is in the database
too, so code from before the column keeps creating logins during a rolling upgrade."""

from peewee import SQL, CharField

from models.migrations import add_column


def upgrade(database, migrator):
    empty = [SQL("DEFAULT ''")]
    add_column(
        database,
        migrator,
        "user",
        "language",
        CharField(max_length=10, default="", constraints=empty),
    )
