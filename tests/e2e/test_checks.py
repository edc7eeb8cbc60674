"""The browser tests' own checks can fail: axe catches a serious violation, the width check
catches a sideways scroll, and the CSP watch catches an inline style the policy refuses."""

import pytest

pytest.importorskip("playwright.sync_api")
pytest.importorskip("axe_playwright_python")

from playwright.sync_api import expect  # noqa: E402


def test_axe_and_the_width_check_fail_on_a_bad_page(open_browser, js_enabled):
    visitor = open_browser(js=js_enabled)
    visitor.page.set_content(
        '<html lang="en"><head><title>bad</title></head>'
        "<body><main><button></button></main></body></html>"
    )
    with pytest.raises(AssertionError, match="button-name"):
        visitor.check("a button without a name")

    visitor.page.set_content(
        '<html lang="en"><head><title>wide</title></head>'
        '<body><main><img alt="wide" width="900" height="10" src="data:,"></main></body></html>'
    )
    with pytest.raises(AssertionError, match="scrolls sideways"):
        visitor.check("a page wider than a phone")


def test_a_csp_violation_is_reported(open_browser):
    visitor = open_browser(js=True)
    visitor.goto("/login")
    expect(visitor.page.get_by_role("heading", name="Sign in")).to_be_visible()
    with visitor.page.expect_console_message(lambda message: "Content Security" in message.text):
        visitor.page.evaluate(
            "() => document.body.insertAdjacentHTML('beforeend', '<p style=\"color: red\">x</p>')"
        )
    assert any("CSP violation" in problem for problem in visitor.problems), visitor.problems
    visitor.problems.clear()
