"""The templates' own gettext and url_for (blueprints/templating.py): the same words and URLs as
Flask-Babel's and Flask's, the language still switching within a request."""

from flask import url_for
from flask_babel import force_locale, refresh
from markupsafe import escape


def render(app, source: str, **context) -> str:
    return app.jinja_env.from_string(source).render(**context)


def test_the_language_switches_within_a_request(app):
    with app.test_request_context(headers={"Accept-Language": "es"}):
        assert render(app, '{{ _("Sign out") }}') == "Cerrar sesión"
        with force_locale("en"):
            assert render(app, '{{ _("Sign out") }}') == "Sign out"
        assert render(app, '{{ _("Sign out") }}') == "Cerrar sesión"
        # The language chosen during the request (the profile's choice, then refresh()).
        app.extensions["babel"].locale_selector = lambda: "en"
        refresh()
        assert render(app, '{{ _("Sign out") }}') == "Sign out"


def test_messages_are_formatted_and_escaped_as_jinja_would(app):
    with app.test_request_context(headers={"Accept-Language": "en"}):
        assert render(app, '{{ _("100%% sure") }}') == "100% sure"
        assert render(app, '{{ _("Hi %(name)s", name=who) }}', who="<b>") == "Hi &lt;b&gt;"
        plural = "{% trans count=n %}{{ count }} day{% pluralize %}{{ count }} days{% endtrans %}"
        assert render(app, plural, n=1) == "1 day"
        assert render(app, plural, n=3) == "3 days"
        assert render(app, '{{ ngettext("%(num)s key", "%(num)s keys", 2) }}') == "2 keys"
        assert render(app, '{{ pgettext("menu", "Open") }}') == "Open"


def test_urls_are_the_ones_flask_builds(app):
    source = "{{ url_for(endpoint, **values) }}"
    cases = [
        ("methods.tab", {"slug": "email"}),
        ("methods.tab", {"slug": "text-message"}),
        ("auth.login", {"next": "/profile?a=1&b=2"}),
        ("auth.login", {"next": "/profile", "x": 1}),
        ("auth.login", {"x": 1, "next": "/profile"}),
        ("static", {"filename": "css/app.css"}),
        ("auth.login", {"_external": True}),
        ("auth.login", {"_anchor": "top"}),
    ]
    for script_root in ("", "/twostep"):
        with app.test_request_context(base_url=f"http://example.test{script_root}/"):
            for _ in range(2):  # built, then remembered
                for endpoint, values in cases:
                    expected = escape(url_for(endpoint, **values))
                    assert render(app, source, endpoint=endpoint, values=values) == expected
    with app.test_request_context(base_url="http://example.test/twostep/"):
        assert render(app, source, endpoint="auth.login", values={}) == "/twostep/login"


def test_the_csrf_token_is_flask_wtfs_and_asked_once_per_request(app, browser, factory):
    """Every form of a page carries the one token Flask-WTF keeps for the request, a new
    request of the same session gets a valid one, and a post with it passes."""
    import re

    factory.family(email="pat@example.com")
    browser.login("pat@example.com")
    found = re.findall(
        r'name="csrf_token" value="([^"]+)"|"X-CSRFToken": "([^"]+)"',
        browser.get("/profile/2sv").get_data(as_text=True),
    )
    tokens = [field or header for field, header in found]
    assert len(tokens) >= 3 and len(set(tokens)) == 1  # the forms' and htmx's
    with app.test_request_context():
        from flask_wtf.csrf import generate_csrf

        assert render(app, "{{ csrf_token() }}") == render(app, "{{ csrf_token() }}")
        assert render(app, "{{ csrf_token() }}") == generate_csrf()
    assert browser.post("/logout").status_code == 303  # the page's token is accepted
