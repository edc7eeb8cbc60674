"""The second step of signing in (issue 4 fills this in)."""

from flask import url_for


def begin(user) -> str:
    """Prepare the second step for `user` after a right password; return the URL to go to."""
    return url_for("challenge.verify")
