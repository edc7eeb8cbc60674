"""Password reset links: a random token mailed to the person, kept here only as a hash."""

from peewee import CharField, DateTimeField, ForeignKeyField

from models import BaseModel
from models.clock import now
from models.people import User


class PasswordResetToken(BaseModel):
    """One "Forgot password?" link. Works once, until `expires_at` (its own, never extended)."""

    user = ForeignKeyField(User, backref="password_reset_tokens", on_delete="CASCADE")
    # SHA-256 of the token in the link; the token itself is never stored.
    token_hash = CharField(max_length=64, unique=True)
    created_at = DateTimeField(default=now)
    expires_at = DateTimeField()
    used_at = DateTimeField(null=True)

    class Meta:
        indexes = ((("user", "created_at"), False),)
