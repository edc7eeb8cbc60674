"""The languages TwoStep speaks, and which one a person gets: their own choice, else the one
their request came in (SPEC, "Palabras en pantalla"; issue 21)."""

from contextlib import contextmanager

from flask import current_app
from flask_babel import force_locale, format_date, format_time, get_locale, gettext

DEFAULT_LANGUAGE = "en"


def N_(message: str) -> str:
    """Mark `message` for the catalogue (`make messages` finds it) without translating it:
    for names kept in English in tables and translated where they are shown (`gettext`)."""
    return message


# Each language's name in that language: the picker and the profile show them like this.
LANGUAGE_NAMES = {"en": "English", "es": "Español"}


def supported() -> tuple[str, ...]:
    """The language codes this app offers (the `LANGUAGES` setting; tests add a pseudo one)."""
    return tuple(current_app.config["LANGUAGES"])


def is_supported(code: str | None) -> bool:
    """Whether `code` is one of the offered languages."""
    return bool(code) and code in supported()


def current_language() -> str:
    """The language of what is being rendered now (English outside a request)."""
    locale = get_locale()
    return str(locale) if locale is not None else DEFAULT_LANGUAGE


def language_of(user) -> str:
    """The language to write to `user` in: their choice, else the request's language."""
    chosen = getattr(user, "language", "") or ""
    if is_supported(chosen):
        return chosen
    return current_language()  # a request's language; English outside one (app.py's selector)


@contextmanager
def speaking_to(user):
    """Render what is inside (an email, a text message) in `user`'s language."""
    with force_locale(language_of(user)):
        yield


def format_day(moment) -> str:
    """A date in the current language: "Nov 26, 2026", "26 nov 2026"."""
    return format_date(moment, "medium")


def format_moment(moment) -> str:
    """A date and time in the current language, in UTC: "Nov 26, 2026, 2:05 PM UTC"."""
    return gettext(
        "%(date)s, %(time)s UTC",
        date=format_date(moment, "medium"),
        time=format_time(moment, "short"),
    )


def set_language(user, code: str) -> None:
    """Store `code` as `user`'s language (the caller checked it is offered)."""
    from models.people import User

    User.update(language=code).where(User.id == user.id).execute()
    user.language = code
