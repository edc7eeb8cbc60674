"""What a person reads and where they are led next (issue 16): the window says whether 2SV is
on, the first saved method offers to turn it on, the Add tabs open on a kind not saved yet, the
code box's instructions belong to the field, the page title follows the second step, the
expiry text follows the setting, the admin-reset email, the tab icon and GET forms."""

import html
import re
from html.parser import HTMLParser

import pytest

from models.outbox import OutboxMessage
from models.people import User
from models.verification import VerificationMethod
from services.methods import enrolment
from tests.conftest import is_fragment, is_full_page
from tests.test_window import last_code

WINDOW = "/profile/2sv"
SIX_DIGITS = re.compile(r"\b(\d{6})\b")
TURN_ON = "Turn on 2-Step Verification"


def text(response) -> str:
    return html.unescape(response.get_data(as_text=True))


@pytest.fixture
def family(factory):
    return factory.family(email="pat@example.com", name="Pat Parent")


@pytest.fixture
def signed_in(browser, family):
    browser.login("pat@example.com")
    return browser


def add_email(browser, htmx: bool):
    browser.get(WINDOW + "?tab=email")
    browser.post("/profile/2sv/methods/email/send", {"destination": "pat@example.com"})
    return browser.post(
        "/profile/2sv/methods/email/confirm", {"code": last_code("pat@example.com")}, htmx=htmx
    )


# --- "2-Step Verification is off" and the one-click turn-on ---------------------------------


def test_the_window_says_plainly_that_2sv_is_off_until_it_is_on(signed_in, family):
    page = text(signed_in.get(WINDOW))
    assert "2-Step Verification is off." in page and "Add a method below" in page
    assert TURN_ON not in page  # nothing to turn on with yet
    VerificationMethod.create(user=family, kind="email", destination=family.email)
    enrolment.set_enabled(family, True)
    page = text(signed_in.get(WINDOW))
    assert "2-Step Verification is on." in page and "2-Step Verification is off." not in page


def test_the_first_method_saved_offers_to_turn_2sv_on_with_htmx(signed_in, family):
    saved = add_email(signed_in, htmx=True)
    assert saved.status_code == 200 and is_fragment(saved)
    body = text(saved)
    offer = re.search(r'<div class="alert alert-ok next-step".*?</div>', body, re.S).group(0)
    assert "Email is set up." in offer
    assert f">{TURN_ON}</button>" in offer
    assert 'action="/profile/2sv/toggle"' in offer and 'hx-post="/profile/2sv/toggle"' in offer
    assert 'name="enabled" value="on"' in offer and 'name="csrf_token"' in offer
    assert "2-Step Verification is off." in body
    assert body.count("Email is set up.") == 1  # said once, in the offer

    # The button turns it on: the toggle component comes back, switched on.
    signed_in.post(f"{WINDOW}/toggle", {"enabled": "on"}, htmx=True)
    assert User.get_by_id(family.id).two_step_enabled
    page = text(signed_in.get(WINDOW))
    assert TURN_ON not in page and 'aria-checked="true"' in page


def test_the_offer_works_without_javascript(signed_in, family):
    saved = add_email(signed_in, htmx=False)
    assert saved.status_code == 303 and saved.headers["Location"] == WINDOW
    page = signed_in.get(WINDOW)
    assert is_full_page(page)
    assert "Email is set up." in text(page) and f">{TURN_ON}</button>" in text(page)
    # Shown once: the flash is gone on the next visit.
    assert TURN_ON not in text(signed_in.get(WINDOW))
    turned_on = signed_in.post(f"{WINDOW}/toggle", {"enabled": "on"})
    assert turned_on.status_code == 303
    assert User.get_by_id(family.id).two_step_enabled


def test_no_offer_when_2sv_is_on_already(signed_in, family):
    VerificationMethod.create(user=family, kind="sms", destination="+12015550123")
    enrolment.set_enabled(family, True)
    body = text(add_email(signed_in, htmx=True))
    assert "Email is set up." in body and TURN_ON not in body


# --- the Add tabs -----------------------------------------------------------------------------


def test_the_add_tabs_open_on_the_first_kind_not_saved_yet(signed_in, family):
    assert 'id="panel-authenticator"' in text(signed_in.get(WINDOW))
    VerificationMethod.create(user=family, kind="totp", destination="")
    assert 'id="panel-email"' in text(signed_in.get(WINDOW))
    VerificationMethod.create(user=family, kind="email", destination=family.email)
    assert 'id="panel-text-message"' in text(signed_in.get(WINDOW))
    # A tab asked for by name still opens, saved or not.
    assert 'id="panel-authenticator"' in text(signed_in.get(WINDOW + "?tab=authenticator"))


# --- the code box -----------------------------------------------------------------------------


def described_by(body: str, field_id: str) -> list[str]:
    field = re.search(rf'<input id="{field_id}"[^>]*>', body, re.S).group(0)
    return re.search(r'aria-describedby="([^"]+)"', field).group(1).split()


@pytest.mark.parametrize("app_config", [{"CODE_TTL_MINUTES": 15}])
def test_the_set_up_code_box_reads_the_expiry_setting_and_is_described(signed_in):
    signed_in.get(WINDOW + "?tab=email")
    body = text(signed_in.post("/profile/2sv/methods/email/send", {"destination": "pat@x.org"}))
    assert "It expires in 15 minutes." in body and "10 minutes" not in body
    ids = described_by(body, "code-email")
    assert ids == ["code-email-instructions"]
    assert re.search(r'id="code-email-instructions">Enter the code we sent to', body)
    wrong = text(signed_in.post("/profile/2sv/methods/email/confirm", {"code": "000000"}))
    assert described_by(wrong, "code-email") == ["code-email-instructions", "code-email-error"]


def test_the_sign_in_code_box_is_described_and_the_title_follows_the_step(browser, factory):
    user = factory.family(email="pat@example.com", two_step=True)
    VerificationMethod.create(user=user, kind="email", destination="pat@example.com")
    VerificationMethod.create(user=user, kind="sms", destination="+12015550123")
    browser.login("pat@example.com")

    picker = text(browser.get("/login/verify"))
    assert "<title>Choose how to get your code · TwoStep</title>" in picker
    method_id = VerificationMethod.get(VerificationMethod.kind == "email").id
    browser.post("/login/verify/method", {"method_id": method_id})
    code_box = text(browser.get("/login/verify"))
    assert "<title>Enter your verification code · TwoStep</title>" in code_box
    assert described_by(code_box, "code") == ["code-instructions"]

    # An HTMX swap of the step carries the title for htmx to put in place.
    partial = browser.get("/login/verify/methods", htmx=True)
    assert is_fragment(partial)
    assert text(partial).startswith("<title>Choose how to get your code · TwoStep</title>")
    recovery = browser.get("/login/verify/recovery", htmx=True)
    assert text(recovery).startswith("<title>Use a recovery code · TwoStep</title>")


# --- the admin-reset email, the icon, GET forms -----------------------------------------------


def test_the_admin_reset_email_says_what_happened_not_if_this_was_you(browser, factory):
    admin = factory.admin(email="ada@example.com", name="Ada Admin", two_step=True)
    VerificationMethod.create(user=admin, kind="email", destination=admin.email)
    parent = factory.family(email="pat@example.com", two_step=True)
    VerificationMethod.create(user=parent, kind="email", destination=parent.email)
    browser.login(admin.email)
    browser.post("/login/verify", {"code": last_code(admin.email)})
    assert browser.post(f"/admin/people/{parent.id}/reset").status_code in (200, 303)
    mail = (
        OutboxMessage.select()
        .where(OutboxMessage.to == parent.email)
        .order_by(OutboxMessage.id.desc())[0]
    )
    assert "reset" in mail.subject.lower() or "reset" in mail.body.lower()
    assert "If this was you" not in mail.body and "If this was you" not in (mail.html or "")
    assert "An administrator at your center removed your verification methods" in mail.body
    assert "If you didn't ask for this, contact your center's administrator." in mail.body


def test_the_tab_icon_is_there_for_everyone(browser, factory):
    def assert_icon(response, who):
        assert response.status_code == 200, who
        assert response.mimetype == "image/vnd.microsoft.icon", who
        assert response.data[:4] == b"\x00\x00\x01\x00", who  # an ICO file's header

    assert_icon(browser.get("/favicon.ico"), "signed out")
    assert 'rel="icon" href="/favicon.ico"' in text(browser.get("/login"))
    user = factory.family(email="pat@example.com", two_step=True)
    VerificationMethod.create(user=user, kind="email", destination=user.email)
    browser.login(user.email)
    assert_icon(browser.get("/favicon.ico"), "half signed in")


class _GetForms(HTMLParser):
    """GET forms and whether any control in them has a name (else the URL ends in "?")."""

    def __init__(self):
        super().__init__()
        self.forms: list[dict] = []

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag == "form":
            self.forms.append({"method": (attributes.get("method") or "get").lower(), "named": 0})
        elif self.forms and tag in ("input", "select", "textarea", "button"):
            self.forms[-1]["named"] += 1 if attributes.get("name") else 0


def bare_get_forms(body: str) -> int:
    """How many GET forms would submit nothing (a URL ending in a bare "?")."""
    parser = _GetForms()
    parser.feed(body)
    return sum(1 for form in parser.forms if form["method"] == "get" and not form["named"])


def test_no_get_form_submits_a_bare_question_mark(browser, factory):
    admin = factory.admin(email="ada@example.com", name="Ada Admin", two_step=True)
    VerificationMethod.create(user=admin, kind="email", destination=admin.email)
    VerificationMethod.create(user=admin, kind="sms", destination="+12015550123")
    teacher = factory.staff(email="terry@example.com", two_step=True)
    VerificationMethod.create(user=teacher, kind="email", destination=teacher.email)
    browser.login(admin.email)
    pages = {
        "picker": browser.get("/login/verify"),
    }
    email_method = VerificationMethod.get(VerificationMethod.user == admin, kind="email")
    browser.post("/login/verify/method", {"method_id": email_method.id})
    pages["code box"] = browser.get("/login/verify")
    pages["recovery"] = browser.get("/login/verify/recovery")
    browser.post("/login/verify", {"code": last_code(admin.email)})
    pages["window"] = browser.get(WINDOW)
    pages["delete"] = browser.get(f"/profile/2sv/methods/{email_method.id}/delete")
    pages["person"] = browser.get(f"/admin/people/{teacher.id}")
    pages["people"] = browser.get("/admin/people")
    pages["activity"] = browser.get("/admin/activity")
    for name, page in pages.items():
        assert page.status_code == 200, name
        assert bare_get_forms(text(page)) == 0, name
    assert bare_get_forms('<form method="get" action="/x"><button>Go</button></form>') == 1


def test_a_code_a_later_sign_in_retired_is_no_longer_valid_not_expired(browser, factory, clock):
    user = factory.family(email="pat@example.com", two_step=True)
    VerificationMethod.create(user=user, kind="email", destination=user.email)
    browser.login(user.email)  # the first code goes out on arrival
    first = last_code(user.email)
    clock.advance(seconds=31)
    browser.post("/login/verify/resend")
    newest = last_code(user.email)
    assert newest != first
    assert browser.post("/login/verify", {"code": newest}).status_code == 303
    browser.logout()

    browser.login(user.email)
    refused = browser.post("/login/verify", {"code": first}, htmx=True)
    assert refused.status_code == 422
    body = text(refused)
    assert "That code is no longer valid. Use the newest code we sent." in body
    assert "expired" not in body
