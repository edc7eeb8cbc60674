"""Security keys in a real Chromium with a virtual authenticator (the DevTools protocol's
WebAuthn domain: ctap2, internal, user verification). Served on `localhost`: WebAuthn refuses
an IP address as the relying party id."""

import json

import pytest

pytest.importorskip("playwright.sync_api")
pytest.importorskip("axe_playwright_python")

from playwright.sync_api import expect  # noqa: E402

from tests.e2e.live import LiveServer  # noqa: E402


@pytest.fixture(scope="module")
def live_server(tmp_path_factory):
    server = LiveServer(tmp_path_factory.mktemp("e2e-keys") / "e2e.db", host="localhost")
    server.start()
    yield server
    server.stop()


def with_authenticator(visitor):
    """Give this window a virtual platform authenticator that says yes at once."""
    session = visitor.context.new_cdp_session(visitor.page)
    session.send("WebAuthn.enable")
    session.send(
        "WebAuthn.addVirtualAuthenticator",
        {
            "options": {
                "protocol": "ctap2",
                "transport": "internal",
                "hasResidentKey": True,
                "hasUserVerification": True,
                "isUserVerified": True,
                "automaticPresenceSimulation": True,
            }
        },
    )
    return session


def add_key(visitor, name: str) -> None:
    page = visitor.page
    page.get_by_role("tab", name="Security Key").click()
    expect(page.get_by_role("tab", name="Security Key")).to_have_attribute("aria-selected", "true")
    visitor.check("Security Key tab")
    page.get_by_label("Key name").fill(name)
    with visitor.full_page():
        visitor.button("Add security key").click()
    methods = page.get_by_role("region", name="Your verification methods")
    expect(methods.get_by_text(name)).to_be_visible()


def use_key(visitor):
    with visitor.full_page():
        visitor.button("Use security key").click()


def test_a_parent_adds_a_key_turns_2sv_on_and_signs_in_with_it(open_browser, people):
    parent = people.family(name="Pat Parent")
    visitor = open_browser(js=True)
    with_authenticator(visitor)
    visitor.sign_in(parent.email)
    visitor.expect_home("Pat Parent")
    visitor.open_two_step_window("Pat Parent")
    add_key(visitor, "Blue USB key")
    visitor.check("2SV window: key added")
    from tests.e2e.test_flows import turn_on

    turn_on(visitor)
    visitor.sign_out("Pat Parent")

    visitor.sign_in(parent.email)
    expect(visitor.button("Use security key")).to_be_visible()
    visitor.check("sign-in: security key")
    use_key(visitor)
    visitor.expect_home("Pat Parent")


def test_without_javascript_the_tab_says_keys_need_it(open_browser, people):
    parent = people.family(name="Pat Parent")
    visitor = open_browser(js=False)
    visitor.sign_in(parent.email)
    visitor.goto("/profile/2sv?tab=security-key")
    expect(visitor.page.get_by_text("Security keys need JavaScript")).to_be_visible()
    expect(visitor.button("Add security key")).to_be_hidden()
    visitor.check("Security Key tab without JavaScript")


def test_a_staff_member_sets_up_2sv_with_a_key(open_browser, people):
    teacher = people.staff(name="Terry Teacher")
    visitor = open_browser(js=True)
    with_authenticator(visitor)
    visitor.sign_in(teacher.email)
    page = visitor.page
    expect(
        page.get_by_role("heading", name="Set up 2-Step Verification to continue")
    ).to_be_visible()
    page.get_by_role("tab", name="Security Key").click()
    page.get_by_label("Key name").fill("Desk key")
    visitor.button("Add security key").click()
    visitor.through_recovery_codes(then=visitor.home_heading("Terry Teacher"))
    assert people.method_kinds(teacher) == {"webauthn"}
    assert people.reload(teacher).two_step_enabled


def test_a_replayed_assertion_and_a_wrong_origin_are_refused(open_browser, people, live_server):
    parent = people.family(name="Pat Parent")
    visitor = open_browser(js=True)
    with_authenticator(visitor)
    visitor.sign_in(parent.email)
    visitor.open_two_step_window("Pat Parent")
    add_key(visitor, "Blue USB key")
    from tests.e2e.test_flows import turn_on

    turn_on(visitor)
    visitor.sign_out("Pat Parent")

    # The origin the server expects is another site's: the real assertion is refused.
    visitor.sign_in(parent.email)
    live_server.app.config["WEBAUTHN_ORIGIN"] = "https://twostep.example"
    try:
        visitor.button("Use security key").click()
        expect(visitor.page.get_by_role("alert").filter(has_text="wasn't accepted")).to_be_visible()
    finally:
        live_server.app.config["WEBAUTHN_ORIGIN"] = ""

    # A good assertion, captured on its way, signs in once; replayed elsewhere it is refused.
    with visitor.page.expect_request("**/login/verify/security-key") as captured:
        use_key(visitor)
    visitor.expect_home("Pat Parent")
    assertion = captured.value.post_data

    attacker = open_browser(js=True)
    attacker.sign_in(parent.email)
    expect(attacker.button("Use security key")).to_be_visible()
    token = json.loads(attacker.page.locator("body").get_attribute("hx-headers"))["X-CSRFToken"]
    replay = attacker.page.request.post(
        "/login/verify/security-key",
        data=assertion,
        headers={"Content-Type": "application/json", "X-CSRFToken": token},
    )
    assert replay.status == 422


def test_a_reset_link_asks_for_the_key_before_the_new_password(open_browser, people, live_server):
    import re

    parent = people.family(name="Pat Parent")
    visitor = open_browser(js=True)
    with_authenticator(visitor)
    visitor.sign_in(parent.email)
    visitor.open_two_step_window("Pat Parent")
    add_key(visitor, "Blue USB key")
    from tests.e2e.test_flows import turn_on

    turn_on(visitor)
    visitor.sign_out("Pat Parent")

    page = visitor.goto("/forgot-password")
    page.get_by_label("Email", exact=True).fill(parent.email)
    with visitor.in_place():
        visitor.button("Send link").click()
        expect(page.get_by_role("status").filter(has_text=re.compile("link", re.I))).to_be_visible()
    visitor.goto(
        live_server.wait_for_text(parent.email, re.compile(r"https?://\S+/reset-password/\S+"))
    )
    expect(page.get_by_role("heading", name="Choose a new password")).to_be_visible()
    expect(visitor.button("Use security key")).to_be_visible()
    visitor.check("reset link: security key")
    use_key(visitor)
    expect(page.get_by_label("New password", exact=True)).to_be_visible()
    expect(page.get_by_text("Thanks, that's you")).to_be_visible()
