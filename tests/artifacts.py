"""Template artifacts: what a template leaks when it goes wrong, found in rendered HTML.

A macro passed where a string was meant shows as `<Macro 'notice'>`, a missing variable as
`Undefined`, a block that was never rendered as `{{ ... }}` or `{% ... %}`, and a Python None
as the word "None". People see these and screen readers read them out. `artifacts_in()` lists
them; the test suite runs it over every HTML response any test receives (tests/conftest.py),
and tests/test_artifacts.py walks every page and partial as each role.
"""

import re
from html.parser import HTMLParser

# Jinja's reprs and leftovers, anywhere in the markup (text or attribute).
_LEAKS = (
    re.compile(r"<Macro\b|&lt;Macro\b"),
    re.compile(r"\bUndefined\b"),
    re.compile(r"\{\{|\{%|\{#"),
)
# Python's None as a word of its own ("Added None ·", "None"), not the English "None of your
# methods..." (followed by a lower-case word).
_NONE_WORD = re.compile(r"\bNone\b(?!\s+[a-z])")


class _Collector(HTMLParser):
    """Text nodes (outside script and style) and attribute values of a page."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.texts: list[str] = []
        self.attributes: list[tuple[str, str, str]] = []
        self._skipping = 0

    def handle_starttag(self, tag, attrs):
        if tag in ("script", "style"):
            self._skipping += 1
        for name, value in attrs:
            if value is not None:
                self.attributes.append((tag, name, value))

    def handle_endtag(self, tag):
        if tag in ("script", "style") and self._skipping:
            self._skipping -= 1

    def handle_data(self, data):
        if not self._skipping and data.strip():
            self.texts.append(data.strip())


def artifacts_in(html: str) -> list[str]:
    """What in `html` is a template artifact rather than words meant for a person (empty when
    the page is clean)."""
    found = []
    for pattern in _LEAKS:
        for match in pattern.finditer(html):
            start = max(match.start() - 60, 0)
            found.append(f"{match.group(0)!r} in …{html[start : match.end() + 60]}…")
    collector = _Collector()
    collector.feed(html)
    for text in collector.texts:
        if _NONE_WORD.search(text):
            found.append(f"'None' shown as text: {text[:120]!r}")
    for tag, name, value in collector.attributes:
        if value.strip() == "None":
            found.append(f"'None' as the value of <{tag} {name}>")
    return found


def watch_for_artifacts(app) -> list[str]:
    """Check every HTML response `app` sends from now on; returns the list that collects what
    was found (request and artifact), for the test to assert empty at its end."""
    from flask import request

    found: list[str] = []

    @app.after_request
    def look_for_artifacts(response):
        if response.mimetype == "text/html" and not response.direct_passthrough:
            for artifact in artifacts_in(response.get_data(as_text=True)):
                found.append(f"{request.method} {request.full_path.rstrip('?')}: {artifact}")
        return response

    return found
