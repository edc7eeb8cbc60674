"""The admin pages: who gets in, the directory (tabs, states, search, pages), a person's page,
the reset confirmation, security activity with its CSV, and 2SV adoption."""

import csv
import io
import re

import pytest

from models.clock import now
from models.events import RESET, SIGNED_IN, SecurityEvent
from models.people import User
from models.sessions import ACTIVE, PENDING, UserSession
from models.verification import VerificationMethod
from services.account import accounts
from services.account.passwords import hash_password
from services.security import security_log
from tests.conftest import is_fragment, is_full_page

DEMO = accounts.DEMO_PASSWORD
SUNSHINE_PEOPLE = [
    "admin@example.com",
    "teacher@example.com",
    "parent@example.com",
    "both@example.com",
]
MAPLE_PEOPLE = ["maple-admin@example.com", "maple-parent@example.com"]


_demo_hash = None


def seed():
    """The demo centers and logins (SPEC, "Demo data and automation"), with the demo password
    hashed once for the whole run (argon2 is slow on purpose)."""
    global _demo_hash
    if _demo_hash is None:
        _demo_hash = hash_password(DEMO)
    original = accounts.hash_password
    accounts.hash_password = lambda password: _demo_hash
    try:
        accounts.seed_demo()
    finally:
        accounts.hash_password = original


def sign_in(browser, email, password=DEMO):
    """Sign in with the password, then finish the second step as the challenge would (that flow
    has its own tests): the browser's pending session becomes an active one."""
    response = browser.login(email, password)
    assert response.status_code == 303, response.get_data(as_text=True)
    user = User.by_email(email)
    UserSession.update(state=ACTIVE).where(
        UserSession.user == user, UserSession.state == PENDING
    ).execute()
    return browser


def add_method(email, kind="email", destination=None, enabled=True):
    """Give a login a saved method, as if it had been set up."""
    user = User.by_email(email)
    if destination is None:
        destination = {"email": email, "sms": "+12015550123", "totp": ""}[kind]
    method = VerificationMethod.create(user=user, kind=kind, destination=destination)
    User.update(two_step_enabled=enabled).where(User.id == user.id).execute()
    return method


def person_id(email) -> int:
    return User.by_email(email).id


def text(response) -> str:
    return response.get_data(as_text=True)


def rows(response) -> dict[str, str]:
    """The directory's rows: email -> the row's HTML."""
    found = {}
    for row in re.findall(r'<tr id="person-\d+">(.*?)</tr>', text(response), re.S):
        email = re.search(r'<span class="muted person-email">([^<]+)</span>', row).group(1)
        found[email] = row
    return found


def state_in(row: str) -> str:
    return re.search(r'<span class="badge [a-z]+">([^<]+)</span>', row).group(1)


@pytest.fixture
def admin(browser, db):
    seed()
    return sign_in(browser, "admin@example.com")


# --- Who gets in ----------------------------------------------------------------------------


def admin_rules(app):
    return [rule for rule in app.url_map.iter_rules() if rule.endpoint.startswith("admin.")]


def fill(rule, user_id) -> str:
    return rule.rule.replace("<int:user_id>", str(user_id))


def test_every_admin_page_is_403_for_a_family(app, browser, db):
    seed()
    add_method("teacher@example.com")
    sign_in(browser, "parent@example.com")
    teacher = person_id("teacher@example.com")
    rules = admin_rules(app)
    assert {rule.endpoint for rule in rules} >= {
        "admin.people",
        "admin.person",
        "admin.confirm_reset",
        "admin.reset_two_step",
        "admin.activity",
        "admin.activity_csv",
        "admin.adoption",
    }
    for rule in rules:
        url = fill(rule, teacher)
        if "GET" in rule.methods:
            response = browser.get(url)
            assert response.status_code == 403, url
            assert "administrators" in text(response)
        if "POST" in rule.methods:
            assert browser.post(url).status_code == 403, url
    assert VerificationMethod.select().count() == 1


def test_a_staff_member_who_is_not_an_admin_gets_403(browser, db):
    seed()
    sign_in(browser, "teacher@example.com")
    assert browser.get("/admin/people").status_code == 403
    assert browser.get("/admin/people", htmx=True).status_code == 403


def test_anonymous_visitors_are_sent_to_sign_in(browser, db):
    seed()
    response = browser.get(f"/admin/people/{person_id('teacher@example.com')}")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login?next=")


def test_people_link_shows_for_admins_only(new_browser, db):
    seed()
    admin = sign_in(new_browser(), "admin@example.com")
    parent = sign_in(new_browser(), "parent@example.com")
    assert 'href="/admin/people">People</a>' in text(admin.get("/"))
    assert 'href="/admin/people"' not in text(parent.get("/"))


def test_another_centers_admin_gets_404_for_every_sunshine_person(app, browser, db):
    seed()
    add_method("teacher@example.com")
    sign_in(browser, "maple-admin@example.com")
    maple_parent = person_id("maple-parent@example.com")
    for email in SUNSHINE_PEOPLE:
        user_id = person_id(email)
        for rule in admin_rules(app):
            if "user_id" not in rule.arguments:
                continue
            url = fill(rule, user_id)
            if "GET" in rule.methods:
                assert browser.get(url).status_code == 404, url
                assert browser.get(url, htmx=True).status_code == 404, url
            if "POST" in rule.methods:
                assert browser.post(url).status_code == 404, url
        for url in (f"/admin/activity?person={user_id}", f"/admin/activity.csv?person={user_id}"):
            assert browser.get(url).status_code == 404, url
    # The answer is the same as for an id nobody has.
    missing = browser.get("/admin/people/999999")
    foreign = browser.get(f"/admin/people/{person_id('teacher@example.com')}")
    assert text(missing) == text(foreign)
    # Their own people answer.
    assert browser.get(f"/admin/people/{maple_parent}").status_code == 200
    assert VerificationMethod.select().count() == 1
    assert SecurityEvent.select().where(SecurityEvent.kind == RESET).count() == 0


def test_another_centers_people_are_never_listed(browser, db):
    seed()
    teacher = User.by_email("teacher@example.com")
    security_log.record(SIGNED_IN, teacher, notify=False)
    sign_in(browser, "maple-admin@example.com")
    pages = [
        browser.get("/admin/people"),
        browser.get("/admin/people?tab=staff"),
        browser.get("/admin/people?tab=families"),
        browser.get("/admin/people?q=example.com"),
        browser.get("/admin/people?q=terry"),
        browser.get("/admin/activity"),
        browser.get("/admin/activity.csv"),
        browser.get("/admin/adoption"),
    ]
    for page in pages:
        assert page.status_code == 200
        body = text(page)
        for email in SUNSHINE_PEOPLE:
            assert not re.search(rf"(?<![\w-]){re.escape(email)}", body), email
        assert "Terry Teacher" not in body and "Sunshine" not in body
    assert set(rows(pages[0])) == set(MAPLE_PEOPLE)


@pytest.mark.parametrize("path", ["/admin/people/abc", "/admin/people/1.5", "/admin/people/-1"])
def test_a_tampered_id_is_404(admin, path):
    assert admin.get(path).status_code == 404


def test_an_id_too_large_for_the_database_is_404(admin):
    assert admin.get(f"/admin/people/{2**63}").status_code == 404
    assert admin.get(f"/admin/activity?person={2**63}").status_code == 404
    assert admin.get("/admin/activity?person=abc").status_code == 404


# --- The directory --------------------------------------------------------------------------


def test_directory_states_for_each_demo_login(admin):
    add_method("teacher@example.com", "email")
    add_method("parent@example.com", "totp")
    add_method("maple-parent@example.com", "email")
    response = admin.get("/admin/people")
    assert response.status_code == 200
    found = rows(response)
    assert set(found) == set(SUNSHINE_PEOPLE)
    assert {email: state_in(row) for email, row in found.items()} == {
        "admin@example.com": "Required — not set up",
        "teacher@example.com": "On",
        "parent@example.com": "On",
        "both@example.com": "Required — not set up",
    }
    assert "Staff, Family" in found["both@example.com"]


def test_a_family_that_turned_2sv_off_shows_off_and_staff_with_a_method_shows_on(admin):
    add_method("parent@example.com", "email", enabled=False)
    add_method("both@example.com", "sms")
    found = rows(admin.get("/admin/people"))
    assert state_in(found["parent@example.com"]) == "Off"
    assert state_in(found["both@example.com"]) == "On"


@pytest.mark.parametrize(
    ("tab", "expected"),
    [
        ("all", SUNSHINE_PEOPLE),
        ("staff", ["admin@example.com", "teacher@example.com", "both@example.com"]),
        ("families", ["parent@example.com", "both@example.com"]),
        ("nonsense", SUNSHINE_PEOPLE),
    ],
)
def test_tabs_list_the_right_people(admin, tab, expected):
    response = admin.get(f"/admin/people?tab={tab}")
    assert set(rows(response)) == set(expected)


def test_tabs_are_real_tabs_that_work_without_javascript(admin):
    body = text(admin.get("/admin/people?tab=staff&q=e"))
    assert 'role="tablist"' in body
    tabs = re.findall(r'<a role="tab"[^>]*>[^<]*</a>', body, re.S)
    assert [re.search(r">([^<]*)</a>", tab).group(1) for tab in tabs] == [
        "All",
        "Staff",
        "Families",
    ]
    for tab in tabs:
        href = re.search(r'href="([^"]+)"', tab).group(1)
        assert re.search(r'hx-get="([^"]+)"', tab).group(1) == href
        assert "q=e" in href
        assert 'hx-target="#people"' in tab and 'hx-swap="outerHTML"' in tab
        assert 'hx-push-url="true"' in tab and 'aria-controls="people-panel"' in tab
    selected = [tab for tab in tabs if 'aria-selected="true"' in tab]
    assert len(selected) == 1 and ">Staff<" in selected[0]
    assert 'role="tabpanel" id="people-panel" aria-labelledby="people-tab-staff"' in body


def test_tabs_answer_htmx_with_the_component_and_browsers_with_the_page(admin):
    fragment = admin.get("/admin/people?tab=families", htmx=True)
    assert fragment.status_code == 200
    assert is_fragment(fragment)
    assert text(fragment).lstrip().startswith('<section class="card" id="people"')
    assert set(rows(fragment)) == {"parent@example.com", "both@example.com"}
    assert "HX-Request" in fragment.headers["Vary"]
    page = admin.get("/admin/people?tab=families")
    assert is_full_page(page)
    assert set(rows(page)) == set(rows(fragment))
    assert "Families with 2-Step Verification on" not in text(fragment)
    assert "families with 2-Step Verification on 0 of 2" in text(page)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("terry", ["teacher@example.com"]),
        ("TEACHER@EXAMPLE", ["teacher@example.com"]),
        ("  Blair ", ["both@example.com"]),
        ("@example.com", SUNSHINE_PEOPLE),
        ("maple", []),  # another center's people never match
        ("%", []),  # wildcards are plain characters
        ("_", []),
    ],
)
def test_search_by_name_or_email(admin, query, expected):
    response = admin.get("/admin/people", query_string={"q": query})
    assert response.status_code == 200
    assert set(rows(response)) == set(expected)


def test_search_stays_within_the_tab(admin):
    response = admin.get("/admin/people?tab=families&q=blair")
    assert set(rows(response)) == {"both@example.com"}
    assert set(rows(admin.get("/admin/people?tab=families&q=terry"))) == set()


def test_pagination(app, admin, factory):
    app.config["ADMIN_PAGE_SIZE"] = 3
    sunshine = factory.center()
    for number in range(1, 6):
        factory.family(email=f"zed{number}@example.com", name=f"Zed {number}", center=sunshine)
    seen = []
    for page in (1, 2, 3):
        response = admin.get(f"/admin/people?page={page}")
        found = list(rows(response))
        assert len(found) == 3
        assert f"Page {page} of 3" in text(response)
        seen += found
    assert len(seen) == len(set(seen)) == 9
    first = text(admin.get("/admin/people"))
    assert 'rel="next" href="/admin/people?page=2&amp;tab=all"' in first
    assert 'rel="prev"' not in first
    last = text(admin.get("/admin/people?page=3"))
    assert 'rel="next"' not in last and 'rel="prev"' in last
    # Past the end shows the last page; nonsense shows the first.
    assert list(rows(admin.get("/admin/people?page=99"))) == seen[6:]
    assert list(rows(admin.get("/admin/people?page=x"))) == seen[:3]
    # Pages keep the tab and the search.
    searched = text(admin.get("/admin/people?tab=families&q=zed"))
    assert "page=2&amp;tab=families&amp;q=zed" in searched


def test_directory_uses_a_fixed_number_of_queries(app, admin, factory):
    from models import db

    sunshine = factory.center()
    for number in range(15):
        user = factory.staff(email=f"s{number}@example.com", center=sunshine)
        VerificationMethod.create(user=user, kind="email", destination=user.email)
    counted = []
    original = db.obj.execute_sql

    def counting(sql, *args, **kwargs):
        counted.append(sql)
        return original(sql, *args, **kwargs)

    db.obj.execute_sql = counting
    try:
        admin.get("/admin/people?tab=staff", htmx=True)
        few = len(counted)
        app.config["ADMIN_PAGE_SIZE"] = 50
        counted.clear()
        admin.get("/admin/people?tab=staff", htmx=True)
        many = len(counted)
    finally:
        db.obj.execute_sql = original
    assert many == few


# --- A person's page ------------------------------------------------------------------------


def test_person_page_shows_roles_state_and_masked_methods(admin, clock):
    add_method("both@example.com", "email", destination="blair.both@example.org")
    add_method("both@example.com", "sms")
    add_method("both@example.com", "totp")
    VerificationMethod.update(last_used_at=now()).where(VerificationMethod.kind == "sms").execute()
    response = admin.get(f"/admin/people/{person_id('both@example.com')}")
    assert response.status_code == 200 and is_full_page(response)
    body = text(response)
    assert "Blair Both" in body
    assert "Staff at Sunshine Early Learning" in body
    assert "Parent / guardian at Sunshine Early Learning" in body
    assert "b•••@example.org" in body and "blair.both@example.org" not in body
    assert "•••-•••-0123" in body and "2015550123" not in body
    assert "Authenticator App" in body and "Text Message" in body
    assert "Nov 26, 2026, 12:00\u202fPM UTC" in body  # through Babel, in English
    assert '<span class="badge on">On</span>' in body
    assert re.search(r'<a class="button danger" role="button"[^>]*>Reset</a>', body)


def test_admin_sees_no_reset_on_their_own_page(admin):
    own = person_id("admin@example.com")
    body = text(admin.get(f"/admin/people/{own}"))
    assert "use your own" in body and 'href="/profile/2sv"' in body
    assert not re.search(r'role="button"[^>]*>Reset<', body)
    refused = admin.get(f"/admin/people/{own}/reset")
    assert refused.status_code == 403
    response = admin.post(f"/admin/people/{own}/reset")
    assert response.status_code == 403
    assert "can&#39;t reset their own 2-Step Verification" in text(response)
    assert SecurityEvent.select().where(SecurityEvent.kind == RESET).count() == 0


def test_another_admin_of_the_same_center_can_be_reset(admin, factory):
    other = factory.admin(email="ada2@example.com", name="Second Admin")
    VerificationMethod.create(user=other, kind="email", destination=other.email)
    response = admin.post(f"/admin/people/{other.id}/reset")
    assert response.status_code == 303
    assert VerificationMethod.select().where(VerificationMethod.user == other).count() == 0


# --- The reset confirmation and the reset ---------------------------------------------------


def test_confirmation_names_the_person_and_what_will_happen(admin):
    add_method("teacher@example.com", "email")
    teacher = person_id("teacher@example.com")
    page = admin.get(f"/admin/people/{teacher}/reset")
    assert page.status_code == 200 and is_full_page(page)
    body = text(page)
    assert "Reset 2-Step Verification for Terry Teacher?" in body
    assert "Email t•••@example.com" in body
    assert "sign Terry Teacher out on every device" in body
    assert "set up 2-Step Verification again the next time they sign in" in body
    assert f'action="/admin/people/{teacher}/reset"' in body and 'method="post"' in body
    assert 'name="csrf_token"' in body
    fragment = admin.get(f"/admin/people/{teacher}/reset", htmx=True)
    assert fragment.status_code == 200 and is_fragment(fragment)
    assert text(fragment).lstrip().startswith('<section class="card" id="two-step"')
    assert "Reset 2-Step Verification for Terry Teacher?" in text(fragment)


def test_family_confirmation_says_they_can_turn_it_on_again(admin):
    add_method("parent@example.com", "email")
    body = text(admin.get(f"/admin/people/{person_id('parent@example.com')}/reset"))
    assert "can turn 2-Step Verification on again" in body
    assert "next time they sign in" not in body


def test_a_get_never_resets(admin):
    add_method("teacher@example.com")
    teacher = person_id("teacher@example.com")
    for htmx in (False, True):
        admin.get(f"/admin/people/{teacher}/reset", htmx=htmx)
        admin.get(f"/admin/people/{teacher}", htmx=htmx)
    assert VerificationMethod.select().count() == 1
    assert User.by_email("teacher@example.com").two_step_enabled
    assert SecurityEvent.select().where(SecurityEvent.kind == RESET).count() == 0


def test_a_reset_without_csrf_is_refused(admin, new_browser):
    add_method("teacher@example.com")
    teacher_browser = sign_in(new_browser(), "teacher@example.com")
    teacher = person_id("teacher@example.com")
    for htmx in (False, True):
        response = admin.post(f"/admin/people/{teacher}/reset", csrf=False, htmx=htmx)
        assert response.status_code == 400
    assert VerificationMethod.select().count() == 1
    assert teacher_browser.get("/profile").status_code == 200
    assert SecurityEvent.select().where(SecurityEvent.kind == RESET).count() == 0


def test_reset_answers_htmx_with_the_section(admin):
    add_method("teacher@example.com")
    teacher = person_id("teacher@example.com")
    admin.get(f"/admin/people/{teacher}/reset", htmx=True)
    response = admin.post(f"/admin/people/{teacher}/reset", htmx=True)
    assert response.status_code == 200 and is_fragment(response)
    body = text(response)
    assert body.lstrip().startswith('<section class="card" id="two-step"')
    assert "Terry Teacher&#39;s 2-Step Verification was reset" in body
    assert "Required — not set up" in body
    # The recent activity below is refreshed out of band.
    events = body[body.index('id="person-events"') :]
    assert 'hx-swap-oob="true"' in events[:200]
    assert "2-Step Verification reset by an admin — by Ada Admin" in events
    assert VerificationMethod.select().count() == 0


def test_reset_without_javascript_redirects_to_the_page_with_a_notice(admin):
    add_method("teacher@example.com")
    teacher = person_id("teacher@example.com")
    admin.get(f"/admin/people/{teacher}/reset")
    response = admin.post(f"/admin/people/{teacher}/reset")
    assert response.status_code == 303
    assert response.headers["Location"] == f"/admin/people/{teacher}"
    page = admin.get(response.headers["Location"])
    assert is_full_page(page)
    assert "Terry Teacher&#39;s 2-Step Verification was reset" in text(page)
    # The notice is shown once.
    assert "was reset" not in text(admin.get(f"/admin/people/{teacher}"))


def test_reset_needs_a_recent_sign_in(admin, clock):
    add_method("teacher@example.com")
    teacher = person_id("teacher@example.com")
    admin.get(f"/admin/people/{teacher}")
    clock.advance(minutes=16)
    response = admin.post(
        f"/admin/people/{teacher}/reset",
        headers={"Referer": f"http://localhost/admin/people/{teacher}"},
    )
    assert response.status_code == 303
    assert response.headers["Location"].startswith("/confirm-password")
    assert f"next=/admin/people/{teacher}" in response.headers["Location"]
    assert VerificationMethod.select().count() == 1
    assert SecurityEvent.select().where(SecurityEvent.kind == RESET).count() == 0
    # The confirmation asks for the password first too, and comes back to itself.
    confirm = admin.get(f"/admin/people/{teacher}/reset")
    assert confirm.headers["Location"].startswith("/confirm-password")
    htmx = admin.get(f"/admin/people/{teacher}/reset", htmx=True)
    assert htmx.headers["HX-Redirect"].startswith("/confirm-password")
    admin.get("/confirm-password")
    back = admin.post(
        "/confirm-password", {"password": DEMO, "next": f"/admin/people/{teacher}/reset"}
    )
    assert back.headers["Location"] == f"/admin/people/{teacher}/reset"
    assert admin.post(f"/admin/people/{teacher}/reset").status_code == 303
    assert VerificationMethod.select().count() == 0


# --- Security activity ----------------------------------------------------------------------


def log_some_events(clock):
    teacher = User.by_email("teacher@example.com")
    parent = User.by_email("parent@example.com")
    maple = User.by_email("maple-parent@example.com")
    admin = User.by_email("admin@example.com")
    security_log.record(SIGNED_IN, teacher, notify=False)
    clock.advance(minutes=1)
    security_log.record(SIGNED_IN, parent, notify=False, method_kind="totp")
    clock.advance(minutes=1)
    security_log.record(RESET, teacher, actor=admin, detail="Removed: Email t•••@example.com")
    clock.advance(minutes=1)
    security_log.record(SIGNED_IN, maple, notify=False)
    security_log.record(SIGNED_IN, teacher, notify=False, detail="=HYPERLINK(1)")
    User.update(name="=cmd|' /C calc'!A0").where(User.id == parent.id).execute()


def test_activity_lists_the_centers_events_newest_first(admin, clock):
    log_some_events(clock)
    response = admin.get("/admin/activity")
    assert response.status_code == 200 and is_full_page(response)
    body = text(response)
    assert "maple-parent@example.com" not in body
    labels = re.findall(r"<td>(Signed in|2-Step Verification reset by an admin)</td>", body)
    assert labels == [
        "Signed in",  # the teacher's, last
        "2-Step Verification reset by an admin",
        "Signed in",  # the parent's
        "Signed in",  # the teacher's, first
    ]
    assert "Ada Admin" in body
    assert "Authenticator App" in body


def test_activity_filters_by_person_and_kind(admin, clock):
    log_some_events(clock)
    teacher = person_id("teacher@example.com")
    by_person = text(admin.get(f"/admin/activity?person={teacher}"))
    assert "3 events" in by_person
    assert "parent@example.com</span>" not in by_person
    assert f'<option value="{teacher}" selected>' in by_person
    by_kind = text(admin.get(f"/admin/activity?person={teacher}&kind=reset"))
    assert "1 event" in by_kind and "2-Step Verification reset by an admin" in by_kind
    fragment = admin.get("/admin/activity?kind=reset", htmx=True)
    assert is_fragment(fragment) and "1 event" in text(fragment)
    assert f"/admin/activity.csv?person={teacher}&amp;kind=reset" in by_kind
    assert admin.get("/admin/activity?kind=nonsense").status_code == 400


def test_activity_is_paginated(app, admin, clock):
    app.config["ADMIN_PAGE_SIZE"] = 2
    log_some_events(clock)
    first = text(admin.get("/admin/activity"))
    assert "Page 1 of 2" in first and "4 events" in first
    second = text(admin.get("/admin/activity?page=2"))
    assert "Page 2 of 2" in second
    assert second.count("<td>Signed in</td>") == 2


def test_activity_csv(admin, clock):
    log_some_events(clock)
    response = admin.get("/admin/activity.csv")
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    disposition = response.headers["Content-Disposition"]
    assert disposition.startswith("attachment;") and ".csv" in disposition
    table = list(csv.reader(io.StringIO(text(response))))
    assert table[0] == ["time", "person", "email", "event", "method", "actor", "ip"]
    emails = {row[2] for row in table[1:]}
    assert emails == {"teacher@example.com", "parent@example.com"}
    reset_row = next(row for row in table if row[3] == "2-Step Verification reset by an admin")
    assert reset_row[1:3] == ["Terry Teacher", "teacher@example.com"]
    assert reset_row[5] == "admin@example.com"
    assert reset_row[0].endswith(" UTC")
    parent_row = next(row for row in table if row[2] == "parent@example.com")
    assert parent_row[4] == "Authenticator App"
    assert parent_row[1].startswith("'=")  # a spreadsheet shows it, never runs it
    teacher = person_id("teacher@example.com")
    only_resets = list(
        csv.reader(io.StringIO(text(admin.get(f"/admin/activity.csv?person={teacher}&kind=reset"))))
    )
    assert len(only_resets) == 2


def test_csv_never_holds_a_code(admin, clock):
    from models.events import CODE_SENT

    teacher = User.by_email("teacher@example.com")
    security_log.record(CODE_SENT, teacher, notify=False, method_kind="email", detail="t•••@x")
    body = text(admin.get("/admin/activity.csv"))
    assert not re.search(r"\b\d{6}\b", body)
    assert "t•••@x" not in body  # details are not exported


# --- Adoption -------------------------------------------------------------------------------


def test_adoption_counts_and_who_is_not_set_up(admin):
    add_method("teacher@example.com")
    add_method("parent@example.com", "totp")
    response = admin.get("/admin/adoption")
    assert response.status_code == 200
    body = text(response)
    assert "Sunshine Early Learning" in body and "Maple" not in body
    assert "<strong>1 of 3</strong>" in body  # staff set up
    assert "<strong>1 of 2</strong>" in body  # families with 2SV on
    staff_section = body[body.index("Staff not set up") : body.index("Families without")]
    assert "Ada Admin" in staff_section and "Blair Both" in staff_section
    assert "Terry Teacher" not in staff_section
    families_section = body[body.index("Families without") :]
    assert "Blair Both" in families_section and "Pat Parent" not in families_section
    people = text(admin.get("/admin/people"))
    assert "families with 2-Step Verification on 1 of 2" in people
    assert "staff set up 1 of 3" in people


def test_an_admin_of_two_centers_sees_both(browser, db, factory):
    seed()
    maple = factory.center("Maple Grove Preschool")
    sunshine = factory.center()
    boss = factory.admin(email="boss@example.com", name="Bo Boss", center=sunshine)
    from models.people import Membership

    Membership.create(user=boss, center=maple, role="staff", is_admin=True)
    browser.login("boss@example.com", "correct horse battery")
    UserSession.update(state=ACTIVE).execute()
    emails = set(rows(browser.get("/admin/people")))
    assert emails == set(SUNSHINE_PEOPLE + MAPLE_PEOPLE + ["boss@example.com"])
    body = text(browser.get("/admin/adoption"))
    assert "Maple Grove Preschool" in body and "Sunshine Early Learning" in body


def test_a_locked_login_shows_locked_until_an_admin_resets_it(app, admin, new_browser, clock):
    """100 wrong codes in a row (Decisions 18): People says "Locked"; Reset unlocks."""
    app.config["SIGN_IN_ATTEMPTS_PER_IP"] = "1000 per minute"  # the per-IP limit is not tested
    add_method("parent@example.com", "email")
    parent = new_browser()
    parent.login("parent@example.com", DEMO)
    for _ in range(100):
        response = parent.post("/login/verify", {"code": "000000"})
        if response.status_code == 429 and "paused" in text(response):
            clock.advance(hours=24)
            parent.login("parent@example.com", DEMO)  # the pending sign-in ended meanwhile
    assert "codes no longer work for this account" in text(response)
    user = User.by_email("parent@example.com")
    assert user.failed_code_count == 100
    sign_in(admin, "admin@example.com")  # days have passed: the admin's session ended
    assert state_in(rows(admin.get("/admin/people"))["parent@example.com"]) == "Locked"
    clock.advance(days=7)  # no pause: a lock lasts
    parent.login("parent@example.com", DEMO)
    refused = parent.post("/login/verify", {"code": "000000"})
    assert refused.status_code == 429 and "codes no longer work" in text(refused)
    assert User.by_email("parent@example.com").failed_code_count == 100  # nothing judged
    sign_in(admin, "admin@example.com")
    admin.get(f"/admin/people/{user.id}")
    admin.post(f"/admin/people/{user.id}/reset")
    fresh = User.by_email("parent@example.com")
    assert (fresh.failed_code_count, fresh.verification_paused_until) == (0, None)
    assert state_in(rows(admin.get("/admin/people"))["parent@example.com"]) == "Off"
