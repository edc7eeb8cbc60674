"""The one clock of the app, so tests can move time instead of sleeping.

It sits below the models (their column defaults read it), so every layer may use it.

Times are naive UTC datetimes everywhere in the database; `now()` returns one.
"""

import time
from datetime import datetime, timedelta

from flask.globals import _cv_app

_EPOCH = datetime(1970, 1, 1)


def system_now() -> datetime:
    """The real time, as a naive UTC datetime (what `datetime.now(UTC).replace(tzinfo=None)`
    gives, at half its cost: `replace` with a keyword is the slow part)."""
    return _EPOCH + timedelta(microseconds=time.time_ns() // 1000)


def now() -> datetime:
    """The current time: the app's `CLOCK` setting if one is set (tests), else the system clock.
    (The app context is read from Flask's context variable, not through `current_app`: a
    sign-in asks the time about ten times.)"""
    context = _cv_app.get(None)
    if context is not None:
        clock = context.app.config.get("CLOCK")
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
