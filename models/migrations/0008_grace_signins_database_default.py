"""`user.grace_signins_used` gets a database default of 0.

Migration 0003 added the column NOT NULL with its default only in Python, so during a rolling
upgrade an instance still running the code from before 0003 (which does not know the column)
failed to create any login. With the default in the database, such inserts get 0.
"""

from peewee import SqliteDatabase


def upgrade(database, migrator):
    if isinstance(database, SqliteDatabase):
        # SQLite cannot alter a column: peewee rebuilds the table with the default added.
        migrator.add_column_default("user", "grace_signins_used", "0").run()
    else:
        # A literal, not a bound value: PostgreSQL's DDL takes no parameters.
        database.execute_sql('ALTER TABLE "user" ALTER COLUMN "grace_signins_used" SET DEFAULT 0')
