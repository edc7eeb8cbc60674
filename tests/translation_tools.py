"""Translation machinery the tests share: extracting the catalogue template from the sources
(as `make messages` does) and a pseudo-translation that marks every catalogued string, so any
visible English that did not pass through the catalogue stands out."""

import re
from io import BytesIO
from pathlib import Path

from babel.messages.frontend import CommandLineInterface
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parent.parent
TRANSLATIONS = ROOT / "translations"

# The pseudo-locale's code: a real locale Babel knows whose dates use no Latin letters, so a
# formatted date never looks like English that escaped the catalogue.
PSEUDO = "ru"


def extract(out_dir: Path):
    """The catalogue template of the sources now (`make messages` without touching files)."""
    pot = out_dir / "messages.pot"
    CommandLineInterface().run(
        [
            "pybabel",
            "--quiet",
            "extract",
            "-F",
            str(ROOT / "babel.cfg"),
            "--no-location",
            "-k",
            "_l",
            "-o",
            str(pot),
            str(ROOT),
        ]
    )
    with pot.open("rb") as handle:
        return read_po(handle)


# What a pseudo-translation keeps as it is: placeholders, HTML tags and entities.
_KEEP = re.compile(r"%\(\w+\)[sd]|%%|<[^>]*>|&\w+;|&#\d+;")
# Latin letters become lookalikes outside ASCII (fullwidth forms), so they stay readable.
_PSEUDO_LETTERS = {
    ord(c): chr(ord(c) - ord("A") + 0xFF21) for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
} | {ord(c): chr(ord(c) - ord("a") + 0xFF41) for c in "abcdefghijklmnopqrstuvwxyz"}


def pseudo(text: str) -> str:
    """`text` with every Latin letter outside placeholders and markup made fullwidth."""
    pieces, last = [], 0
    for match in _KEEP.finditer(text):
        pieces.append(text[last : match.start()].translate(_PSEUDO_LETTERS))
        pieces.append(match.group(0))
        last = match.end()
    pieces.append(text[last:].translate(_PSEUDO_LETTERS))
    return "".join(pieces)


def write_pseudo_catalogue(directory: Path) -> Path:
    """Compile a pseudo-translation of every extracted message into
    `directory`/PSEUDO/LC_MESSAGES/messages.mo (a translations directory for Flask-Babel)."""
    catalog = extract(directory)
    catalog.locale = PSEUDO
    for message in catalog:
        if not message.id:
            continue
        if isinstance(message.id, tuple):
            plurals = catalog.num_plurals
            message.string = tuple(pseudo(message.id[min(i, 1)]) for i in range(plurals))
        else:
            message.string = pseudo(message.id)
    target = directory / PSEUDO / "LC_MESSAGES"
    target.mkdir(parents=True)
    buffer = BytesIO()
    write_mo(buffer, catalog)
    (target / "messages.mo").write_bytes(buffer.getvalue())
    return directory


_ASCII_WORD = re.compile(r"[A-Za-z]{2,}")


def english_left(text: str, allowed: set[str]) -> list[str]:
    """The words of `text` (visible text) written in plain Latin letters, less the `allowed`
    data (names, addresses, the product's name): what no catalogue translated."""
    for value in sorted(allowed, key=len, reverse=True):
        if value:
            text = text.replace(value, " ")
    return _ASCII_WORD.findall(text)
