"""The catalogues (issue 21): every message of the sources is in every language's catalogue,
translated (not empty, not fuzzy, with the same placeholders), and the compiled .mo files the
app loads say what the .po files say."""

import re

import pytest
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po

from app import DEFAULTS
from tests.translation_tools import TRANSLATIONS, extract

LANGUAGES = [code for code in DEFAULTS["LANGUAGES"] if code != DEFAULTS["BABEL_DEFAULT_LOCALE"]]
_PLACEHOLDER = re.compile(r"%\((\w+)\)[sd]")


def _forms(value) -> tuple:
    return tuple(value) if isinstance(value, (tuple, list)) else (value,)


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    return extract(tmp_path_factory.mktemp("pot"))


def _catalogue(code: str):
    with (TRANSLATIONS / code / "LC_MESSAGES" / "messages.po").open("rb") as handle:
        return read_po(handle, locale=code)


def test_the_sources_have_messages_to_translate(template):
    ids = {message.id for message in template if message.id}
    # A few that must be there whatever else changes (SPEC "Words on the screen").
    assert {"Language", "Authenticator App", "Text Message"} <= {
        each if isinstance(each, str) else each[0] for each in ids
    }


@pytest.mark.parametrize("code", LANGUAGES)
def test_every_message_is_translated_and_none_is_fuzzy(template, code):
    catalogue = _catalogue(code)
    missing, empty, fuzzy, placeholders = [], [], [], []
    for message in template:
        if not message.id:
            continue
        found = catalogue.get(message.id)
        if found is None:
            missing.append(message.id)
            continue
        if not all(_forms(found.string)):
            empty.append(message.id)
        if found.fuzzy:
            fuzzy.append(message.id)
        # The same placeholders (a plural's singular may leave the count out, in both).
        wanted = set(_PLACEHOLDER.findall(" ".join(_forms(message.id))))
        given = [set(_PLACEHOLDER.findall(form)) for form in _forms(found.string)]
        if not all(each <= wanted for each in given) or set().union(*given) != wanted:
            placeholders.append(message.id)
    assert not catalogue.fuzzy, f"{code}: the catalogue itself is marked fuzzy"
    assert missing == [], f"{code}: not in the catalogue (run `make messages`): {missing}"
    assert empty == [], f"{code}: not translated: {empty}"
    assert fuzzy == [], f"{code}: fuzzy: {fuzzy}"
    assert placeholders == [], f"{code}: placeholders differ from the English: {placeholders}"


@pytest.mark.parametrize("code", LANGUAGES)
def test_the_compiled_catalogue_matches_the_po_file(code):
    """The .mo files are committed (a fresh clone and the wheel need no compile step): one
    that lags behind its .po (`make translations` not run) fails here."""
    catalogue = _catalogue(code)
    with (TRANSLATIONS / code / "LC_MESSAGES" / "messages.mo").open("rb") as handle:
        compiled = read_mo(handle)

    def key(message):
        return tuple(_forms(message.id)), tuple(_forms(message.string))

    written = dict(key(m) for m in catalogue if m.id and not m.fuzzy and all(_forms(m.string)))
    loaded = dict(key(m) for m in compiled if m.id)
    assert loaded == written, "run `make translations` and commit the .mo file"
