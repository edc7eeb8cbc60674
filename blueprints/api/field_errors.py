"""What is wrong with each field of a refused request body, in the request's language: made
from pydantic's error `type` and `ctx` (never its English `msg`) for the errors the API's
request models (blueprints/api/schemas.py) can give; any other type gets a generic message."""

import re
from collections.abc import Mapping

from babel.lists import format_list
from flask_babel import gettext, ngettext

from services.language import N_, current_language

GENERIC = N_("This value isn't valid.")

# Error types whose message needs no number, or only puts a value from `ctx` in.
_MESSAGES = {
    "missing": N_("This field is required."),
    "extra_forbidden": N_("This field isn't allowed here."),
    "model_type": N_("Send a JSON object."),
    "dict_type": N_("Send a JSON object."),
    "string_type": N_("This should be text."),
    "int_type": N_("This should be a whole number."),
    "bool_type": N_("This should be true or false."),
    "greater_than_equal": N_("Use %(ge)s or more."),
    "less_than_equal": N_("Use %(le)s or less."),
    "literal_error": N_("Use one of these: %(expected)s."),
}
_QUOTED = re.compile(r"'((?:[^'\\]|\\.)*)'")


def _too_long(ctx: Mapping) -> str:
    return ngettext(
        "Use at most %(num)d character.", "Use at most %(num)d characters.", ctx["max_length"]
    )


# Error types whose message counts something (plural forms).
_COUNTED = {"string_too_long": _too_long}


def _choices(expected: str) -> str:
    """pydantic's `'a', 'b' or 'c'` as a list in the request's language: "a", "b" or "c"."""
    values = _QUOTED.findall(expected)
    if not values:
        return expected
    quoted = [f'"{value}"' for value in values]
    return format_list(quoted, style="or", locale=current_language())


def field_message(error: Mapping) -> str:
    """The message for one pydantic error (`type`, `ctx`) in the request's language; the
    generic one for a type not in the table or a `ctx` that lacks what it needs."""
    kind = error.get("type")
    ctx = dict(error.get("ctx") or {})
    try:
        if kind in _COUNTED:
            return _COUNTED[kind](ctx)
        if kind == "literal_error":
            ctx["expected"] = _choices(str(ctx["expected"]))
        message = _MESSAGES.get(kind)
        if message is not None:
            return gettext(message, **{name: ctx[name] for name in _placeholders(message)})
    except (KeyError, TypeError, ValueError):
        pass
    return gettext(GENERIC)


def _placeholders(message: str) -> list[str]:
    return re.findall(r"%\((\w+)\)s", message)


def field_errors(errors) -> dict[str, str]:
    """Field path -> message (the first error of each field), as a 422's `errors`."""
    fields = {}
    for error in errors:
        where = ".".join(str(part) for part in error.get("loc", ())) or "body"
        if where not in fields:
            fields[where] = field_message(error)
    return fields
