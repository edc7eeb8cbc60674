"""No template artifacts on any page or partial: every GET route of the app, as every role and
in every state these fixtures build (signed out, half signed in at the picker, the code box or
the staff set-up, signed in as a family with and without methods, as staff, as an admin), each
tab open, each one full page and as an HTMX partial; then the partials the method tabs and the
switch send back after a POST.

The routes come from the app's url_map, so a new page is walked without being listed here (the
last test fails if a GET route is never answered with an HTML page in any state). Every other
test's responses are checked as well (tests/conftest.py watches every app the tests make).
"""

import re

import pytest
from werkzeug.routing import Rule

from models.outbox import OutboxMessage
from models.people import FAMILY, STAFF
from models.verification import VerificationMethod
from services.methods import BY_SLUG
from tests.artifacts import artifacts_in
from tests.test_window import last_code

SIX_DIGITS = re.compile(r"\b(\d{6})\b")
RESET_LINK = re.compile(r"/reset-password/([A-Za-z0-9_-]+)")

# Routes that answer something other than an HTML page, by design.
NOT_HTML = {
    "static",
    "health.healthz",
    "admin.activity_csv",
    "recovery.download",
    "home.favicon",
    "language.choose",  # the "English · Español" link: a redirect back, with a cookie
}

TAB_QUERIES = ["", *(f"?tab={slug}" for slug in BY_SLUG), "?tab=nonsense"]
# The query strings a route reads, each value it knows and one it does not.
QUERIES = {
    "profile.two_step": TAB_QUERIES,
    "methods.setup": TAB_QUERIES,
    "admin.people": ["", "?tab=staff", "?tab=families", "?tab=x", "?q=pat", "?q=zz", "?page=9"],
    "admin.activity": ["", "?kind=method_added", "?page=2"],
    "passwords.reset": ["", "?methods", "?recovery"],
    "recovery.left": ["", "?next=/profile"],
}


def get_rules(app) -> list[Rule]:
    """Every route that answers GET with a page (the mobile API under /api answers JSON)."""
    return [
        rule
        for rule in app.url_map.iter_rules()
        if "GET" in rule.methods
        and rule.endpoint not in NOT_HTML
        and not rule.endpoint.startswith("api.")
    ]


def urls_for(rule: Rule, values: dict[str, list[str]]) -> list[str]:
    """The URLs of `rule`: each known value of its one argument (and a wrong one), each with
    the query strings that route reads."""
    queries = QUERIES.get(rule.endpoint, [""])
    if not rule.arguments:
        paths = [rule.rule]
    else:
        (argument,) = rule.arguments
        paths = [re.sub(r"<[^>]+>", str(value), rule.rule) for value in values.get(argument, ["1"])]
    return [path + query for path in paths for query in queries]


class Walk:
    """Visits URLs as one browser, full page and partial, and keeps what it saw."""

    def __init__(self):
        self.html_pages: dict[str, int] = {}  # endpoint -> HTML 200 answers
        self.leaks: list[str] = []
        self.errors: list[str] = []

    def visit(self, state: str, browser, url: str, endpoint: str, htmx: bool) -> None:
        response = browser.get(url, htmx=htmx)
        where = f"{state}: GET {url}{' (HTMX)' if htmx else ''} -> {response.status_code}"
        if response.status_code >= 500:
            self.errors.append(where)
        if response.mimetype != "text/html":
            return
        body = response.get_data(as_text=True)
        if response.status_code == 200 and body.strip():
            self.html_pages[endpoint] = self.html_pages.get(endpoint, 0) + 1
        self.leaks.extend(f"{where}: {each}" for each in artifacts_in(body))

    def every_get(self, state: str, browser, app, values) -> None:
        for rule in get_rules(app):
            for url in urls_for(rule, values):
                for htmx in (False, True):
                    self.visit(state, browser, url, rule.endpoint, htmx)


@pytest.fixture
def walk():
    return Walk()


def signed_in_with_code(browser, user, destination):
    """Sign in a login whose one method is email (the code goes there on arrival)."""
    browser.login(user.email)
    browser.post("/login/verify", {"code": last_code(destination)})
    return browser


def test_every_page_and_partial_as_every_role_and_state(app, factory, new_browser, walk):
    walk_every_state(app, factory, new_browser, walk)
    assert not walk.errors, "Server errors:\n" + "\n".join(walk.errors)
    assert not walk.leaks, "Template artifacts:\n" + "\n".join(walk.leaks)
    # Every HTML route was answered with a page at least once: nothing went unwalked.
    unreached = {rule.endpoint for rule in get_rules(app) if rule.endpoint not in NOT_HTML} - set(
        walk.html_pages
    )
    assert not unreached, f"Never shown as a page in any state: {sorted(unreached)}"


def walk_every_state(app, factory, new_browser, walk) -> None:
    """Build every role and state (see the module's docstring) and visit every GET route in
    each; tests/test_pseudo_locale.py walks the same way in the pseudo-locale."""
    center = factory.center()
    other_center = factory.center("Maple Grove Preschool")
    admin = factory.admin(name="Ada Admin", two_step=True)
    VerificationMethod.create(user=admin, kind="email", destination=admin.email)
    family_bare = factory.family(name="Pat Parent")
    family_full = factory.family(name="Fay Full")
    both = factory.user(roles=[STAFF, FAMILY], name="Blair Both", center=center)
    staff_new = factory.staff(name="Sam New")
    outsider = factory.family(name="Olly Outside", center=other_center)
    teacher = factory.staff(name="Terry Teacher", two_step=True)
    VerificationMethod.create(user=teacher, kind="email", destination=teacher.email)
    VerificationMethod.create(user=teacher, kind="sms", destination="+12015550123")

    values = {
        "slug": [*BY_SLUG, "nonsense"],
        "user_id": [str(each.id) for each in (admin, family_full, both, staff_new, outsider)]
        + ["999999"],
        "method_id": ["999999", "x"],
        "token": ["not-a-real-token"],
    }

    # Signed out.
    anonymous = new_browser()
    walk.every_get("signed out", anonymous, app, values)

    # A password reset link, opened by someone signed out (the teacher has two methods).
    reset_browser = new_browser()
    reset_browser.get("/forgot-password")
    reset_browser.post("/forgot-password", {"email": teacher.email}).close()
    mail = (
        OutboxMessage.select()
        .where(OutboxMessage.to == teacher.email, OutboxMessage.body.contains("/reset-password/"))
        .order_by(OutboxMessage.id.desc())
        .first()
    )
    token = RESET_LINK.search(mail.body).group(1)
    walk.every_get("reset link", reset_browser, app, {**values, "token": [token]})
    teacher_methods = list(VerificationMethod.select().where(VerificationMethod.user == teacher))
    reset_browser.post(f"/reset-password/{token}/method", {"method_id": teacher_methods[0].id})
    walk.every_get("reset link, code sent", reset_browser, app, {**values, "token": [token]})

    # Half signed in: the staff set-up (no method yet).
    setting_up = new_browser()
    setting_up.login(staff_new.email)
    walk.every_get("staff set-up", setting_up, app, values)
    setting_up.post("/profile/2sv/methods/email/send", {"destination": staff_new.email})
    walk.every_get("staff set-up, code sent", setting_up, app, values)

    # Half signed in: the picker (two methods), then the code box.
    picking = new_browser()
    picking.login(teacher.email)
    walk.every_get("picker", picking, app, values)
    picking.post("/login/verify/method", {"method_id": teacher_methods[1].id})
    walk.every_get("code box", picking, app, values)
    picking.post("/login/verify", {"code": "000000"})
    walk.every_get("code box, a wrong code", picking, app, values)

    # Signed in: a family with nothing set up, then with its tabs half done.
    bare = new_browser()
    bare.login(family_bare.email)
    walk.every_get("family, no method", bare, app, values)
    bare.post("/profile/2sv/methods/authenticator/start")
    bare.post("/profile/2sv/methods/email/send", {"destination": family_bare.email})
    walk.every_get("family, set-ups started", bare, app, values)

    # Signed in: a family with every kind that holds one method, 2SV on, recovery codes shown.
    full = new_browser()
    full.login(family_full.email)
    for kind, destination in (("totp", ""), ("email", family_full.email), ("sms", "+12015550199")):
        VerificationMethod.create(user=family_full, kind=kind, destination=destination)
    full.post("/profile/2sv/toggle", {"enabled": "on"})
    own = [
        str(each.id)
        for each in VerificationMethod.select().where(VerificationMethod.user == family_full)
    ]
    walk.every_get("family, all methods", full, app, {**values, "method_id": [*own, "x"]})

    # Signed in: staff (2SV required, the switch locked) and an admin.
    staff_browser = signed_in_with_code(new_browser(), teacher, teacher.email)
    own = [str(each.id) for each in teacher_methods]
    walk.every_get("staff", staff_browser, app, {**values, "method_id": own})
    admin_browser = signed_in_with_code(new_browser(), admin, admin.email)
    walk.every_get("admin", admin_browser, app, values)
    admin_browser.post(f"/admin/people/{staff_new.id}/reset")
    walk.every_get("admin, after a reset", admin_browser, app, values)


def test_partials_after_each_change_have_no_artifacts(factory, browser, clock):
    """The tabs, the window and the switch as HTMX sends them back after a POST: a sent code,
    a wrong code, a saved method, turning on, asking to delete, deleting."""
    bodies = partials_after_each_change(factory, browser)
    leaks = [f"{url}: {each}" for url, body in bodies for each in artifacts_in(body)]
    assert not leaks, "\n".join(leaks)
    assert len(bodies) == 10


def partials_after_each_change(factory, browser) -> list[tuple[str, str]]:
    """(what, HTML) of each partial the tabs, the window and the switch send back after a
    POST (and the delete confirmation)."""
    family = factory.family(name="Pat Parent")
    browser.login(family.email)
    bodies = []

    def post(url, data=None):
        response = browser.post(url, data or {}, htmx=True)
        assert response.status_code < 500, url
        bodies.append((url, response.get_data(as_text=True)))
        return response

    post("/profile/2sv/toggle", {"enabled": "on"})  # no method yet: refused in place
    post("/profile/2sv/methods/email/send", {"destination": "not an address"})
    post("/profile/2sv/methods/email/send", {"destination": family.email})
    post("/profile/2sv/methods/email/confirm", {"code": "12"})
    post("/profile/2sv/methods/email/confirm", {"code": last_code(family.email)})
    post("/profile/2sv/methods/sms/send", {"destination": "(201) 555-0123"})
    post("/profile/2sv/methods/authenticator/start")
    post("/profile/2sv/toggle", {"enabled": "on"})
    method = VerificationMethod.get(VerificationMethod.user == family)
    bodies.append(
        (
            "delete?",
            browser.get(f"/profile/2sv/methods/{method.id}/delete", htmx=True).get_data(
                as_text=True
            ),
        )
    )
    post(f"/profile/2sv/methods/{method.id}/delete")
    return bodies


@pytest.mark.parametrize(
    "html",
    [
        "<div role=status><p>&lt;Macro 'notice'&gt;</p></div>",
        "<p>Hello {{ user.name }}</p>",
        "<p>{% if x %}</p>",
        "<p>Undefined</p>",
        "<p>Added None</p>",
        '<input value="None">',
    ],
)
def test_the_check_finds_each_kind_of_artifact(html):
    assert artifacts_in(html)


def test_the_check_passes_clean_markup_and_scripts():
    html = (
        "<p>Nothing yet.</p><p>None of your methods can be used here.</p>"
        "<script>if (a) { b({c: 1}); }</script>"
        """<body hx-headers='{"X-CSRFToken": "abc"}'><p>No methods yet.</p></body>"""
    )
    assert artifacts_in(html) == []
