"""The one clock of the app, so tests can move time instead of sleeping.

It sits below the models (their column defaults read it), so every layer may use it.

Times are naive UTC datetimes everywhere in the database; `now()` returns one.
"""

from datetime import UTC, datetime, timedelta

from flask import current_app, has_app_context


def system_now() -> datetime:
    """The real time, as a naive UTC datetime."""
    return datetime.now(UTC).replace(tzinfo=None)


def now() -> datetime:
    """The current time: the app's `CLOCK` setting if one is set (tests), else the system clock."""
    if has_app_context():
        clock = current_app.config.get("CLOCK")
        if clock is not None:
            return clock()
    return system_now()


class FrozenClock:
    """A clock that stands still until moved: `clock.advance(minutes=10)`."""

    def __init__(self, start: datetime | None = None):
        self.current = start or system_now()

    def __call__(self) -> datetime:
        return self.current

    def advance(self, **delta) -> datetime:
        self.current = self.current + timedelta(**delta)
        return self.current

    def set(self, moment: datetime) -> None:
        self.current = moment
