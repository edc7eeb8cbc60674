"""The languages TwoStep speaks, and which one a person gets: their own choice, else the one
their request came in (SPEC, "Palabras en pantalla"; issue 21)."""

from contextlib import contextmanager
from datetime import datetime

from babel import Locale
from babel.dates import parse_pattern
from flask import current_app
from flask.globals import _cv_app
from flask_babel import force_locale, get_locale, get_translations, to_user_timezone

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


def kept_locales(selector):
    """`selector` (Flask-Babel's locale selector, answering a language code) answering one
    Babel locale per code for the life of the app: Flask-Babel parses the answer into a new
    locale on every request, which then loads its data and has its catalogue found again.
    Kept per app, as apps may have different catalogues (catalogue_for keys on the object)."""
    locales = {}

    def select() -> Locale:
        code = selector()
        locale = locales.get(code)
        if locale is None:
            locale = locales[code] = Locale.parse(code)
        return locale

    return select


def current_locale() -> Locale | None:
    """Flask-Babel's `get_locale()`: the locale it picked for this moment, read straight from
    the app context when it has picked one (what get_locale() returns then, without its three
    lookups through Flask's `g`), else picked by Flask-Babel."""
    context = _cv_app.get(None)
    if context is not None:
        locale = getattr(getattr(context.g, "_flask_babel", None), "babel_locale", None)
        if locale is not None:
            return locale
    return get_locale()


def current_language() -> str:
    """The language of what is being rendered now (English outside a request)."""
    locale = current_locale()
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


# Flask-Babel's locale object last seen and its catalogue. Requests share an app's locale
# objects (kept_locales); force_locale() makes a new one, so a new object is a new key; the
# catalogue it loads for a language is kept for the life of the process.
_found = (None, None)


def catalogue_for(locale):
    """The catalogue Flask-Babel uses now, `locale` being the locale object it picked for now
    (None: not picked yet): Flask-Babel is asked once per locale object, not on every message
    (its `gettext` finds the locale and catalogue again each time)."""
    global _found
    found_locale, catalogue = _found
    if locale is None or locale is not found_locale:
        catalogue = get_translations()  # picks the locale if it was not picked yet
        locale = current_locale()
        if locale is not None:  # None: no app context, a catalogue that translates nothing
            _found = (locale, catalogue)
    return catalogue


def gettext(message: str, **variables) -> str:
    """Flask-Babel's `gettext`, at less cost: `message` in the current language, with
    `variables` put into it."""
    text = catalogue_for(current_locale()).ugettext(message)
    return text % variables if variables else text


def format_day(moment) -> str:
    """A date in the current language: "Nov 26, 2026", "26 nov 2026" (what Flask-Babel's
    format_date(moment, "medium") writes, with the locale looked up once)."""
    locale = current_locale()
    if isinstance(moment, datetime):
        moment = to_user_timezone(moment).date()
    return parse_pattern(locale.date_formats["medium"]).apply(moment, locale)


def format_moment(moment: datetime) -> str:
    """A date and time in the current language, in UTC: "Nov 26, 2026, 2:05 PM UTC" (Flask-
    Babel's format_date "medium" and format_time "short", with the locale and time zone looked
    up once)."""
    locale = current_locale()
    local = to_user_timezone(moment)
    date = parse_pattern(locale.date_formats["medium"]).apply(local.date(), locale)
    time = parse_pattern(locale.time_formats["short"]).apply(
        local.timetz(), locale, reference_date=moment.date()
    )
    return gettext("%(date)s, %(time)s UTC", date=date, time=time)


def set_language(user, code: str) -> None:
    """Store `code` as `user`'s language (the caller checked it is offered)."""
    from models.people import User

    User.update(language=code).where(User.id == user.id).execute()
    user.language = code
