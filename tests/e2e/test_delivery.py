"""Delivery status in a real browser (issue 20): a code that bounces after it was sent turns
the code box's alert on - with JavaScript in place, by HTMX polling, without a reload; without
JavaScript on the next load. The bounce comes from `flask outbox --fail ADDRESS`, as in a demo."""

import re

import pytest

pytest.importorskip("playwright.sync_api")
pytest.importorskip("axe_playwright_python")

from playwright.sync_api import expect  # noqa: E402

from services.methods import mask_email  # noqa: E402


def test_a_bounce_after_the_send_turns_the_code_box_alert_on(visitor, people, live_server):
    parent = people.family(name="Pat Parent", two_step=True)
    people.add_method(parent, "email", parent.email)
    visitor.sign_in(parent.email)
    page = visitor.page
    expect(page.get_by_label("Verification code")).to_be_visible()
    expect(page.get_by_text("Delivered.")).to_be_visible()
    visitor.check("code box: delivered")

    marker = visitor.mark_document() if visitor.js else ""
    result = live_server.app.test_cli_runner().invoke(args=["outbox", "--fail", parent.email])
    assert result.exit_code == 0, result.output

    alert = visitor.bounce_alert(mask_email(parent.email))
    visitor.expect_reported(alert, marker, load_again=page.reload)
    # The ways on are the code box's own buttons: the alert repeats none of them.
    send_new_code = page.get_by_role("button", name="Send new code")
    expect(send_new_code).to_have_count(1)
    expect(alert.get_by_role("button")).to_have_count(0)
    expect(page.get_by_text(re.compile("Delivered"))).to_have_count(0)
    visitor.check("code box: the code bounced")

    # The code box's Send new code: a new code, a new delivery, the alert gone.
    live_server.clock.advance(seconds=2)
    with visitor.in_place():
        send_new_code.click()
        expect(alert).to_have_count(0)
    expect(send_new_code).to_have_count(1)
    expect(page.get_by_text("Delivered.")).to_be_visible()
    assert len(live_server.codes_sent_to(parent.email)) == 2
