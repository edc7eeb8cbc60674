"""Delivery status on the Add-method code box in a real browser: a code sent to a mistyped
address bounces, and the box's alert asks to check the address (by HTMX polling with
JavaScript, on the next load without), with nothing for axe to object to and nothing
scrolling sideways down to a 320 px phone; correcting the address and sending a new code
with the one Send new code there is clears it, and the code that arrives adds the method."""

import pytest

pytest.importorskip("playwright.sync_api")
pytest.importorskip("axe_playwright_python")

from playwright.sync_api import expect  # noqa: E402

from services.methods import mask_email  # noqa: E402

PHONE_WIDTH = 320


def fits_width(page, width: int) -> None:
    """Nothing on the page scrolls sideways at `width` px."""
    original = page.viewport_size
    try:
        page.set_viewport_size({"width": width, "height": original["height"]})
        overflow = page.evaluate(
            "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0, f"{overflow} px scroll sideways at {width} px"
    finally:
        page.set_viewport_size(original)


def test_a_mistyped_address_being_added_bounces_and_is_put_right(visitor, people, live_server):
    parent = people.family(name="Tess Typo")
    mistyped = parent.email.replace("@example.com", "@example.org")
    assert mistyped != parent.email
    visitor.sign_in(parent.email)
    visitor.expect_home("Tess Typo")
    visitor.open_two_step_window("Tess Typo")
    page = visitor.page
    with visitor.in_place():
        page.get_by_role("tab", name="Email").click()
        expect(page.get_by_role("tab", name="Email")).to_have_attribute("aria-selected", "true")
    page.get_by_label("Email address", exact=True).fill(mistyped)
    with visitor.in_place():
        visitor.button("Send code").click()
        expect(page.get_by_label("Verification code")).to_be_visible()
    assert len(live_server.wait_for_codes(mistyped, 1)) == 1

    marker = visitor.mark_document() if visitor.js else ""
    result = live_server.app.test_cli_runner().invoke(args=["outbox", "--fail", mistyped])
    assert result.exit_code == 0, result.output
    alert = visitor.bounce_alert(mask_email(mistyped))
    # Without JavaScript, the box again as "Check again" would load it (a delivered code's
    # status offers no such link).
    visitor.expect_reported(
        alert, marker, load_again=lambda: visitor.goto("/profile/2sv?tab=email")
    )
    expect(alert).to_contain_text("Check the address above")
    expect(visitor.button("Send new code")).to_have_count(1)
    expect(alert).not_to_contain_text("spam")
    visitor.check("Add-method box: the code bounced")
    fits_width(page, PHONE_WIDTH)

    live_server.clock.advance(seconds=2)
    page.get_by_label("Email address", exact=True).fill(parent.email)
    with visitor.in_place():
        visitor.button("Send new code").click()
        expect(alert).to_have_count(0)
    code = live_server.wait_for_codes(parent.email, 1)[-1]
    assert len(live_server.codes_sent_to(mistyped)) == 1
    with visitor.in_place():
        visitor.enter_code(code)
        methods = page.get_by_role("region", name="Your verification methods")
        expect(methods.get_by_role("listitem").filter(has_text="Email")).to_be_visible()
