"""What a parent meets between the steps (issue 16), in a real browser: the one-click turn-on
after the first method, where the focus goes after each HTMX swap, the contrast of the focus
ring and of the borders that show a control, every method tab in sight at 320 px, the setup
key's Copy button and the profile menu as a disclosure."""

import re

import pytest

pytest.importorskip("playwright.sync_api")
pytest.importorskip("axe_playwright_python")

from playwright.sync_api import expect  # noqa: E402

from tests.e2e.test_flows import add_by_code, saved_methods  # noqa: E402

MINIMUM_CONTRAST = 3.0  # WCAG 1.4.11, non-text contrast


def signed_in_window(visitor, people, name: str, **kwargs):
    """A family login, signed in, on its 2-Step Verification window."""
    parent = people.family(name=name, **kwargs)
    visitor.sign_in(parent.email)
    visitor.expect_home(name)
    visitor.open_two_step_window(name)
    return parent


def status_line(page):
    return page.locator("#two-step-status")


def turn_on_button(visitor):
    return visitor.button("Turn on 2-Step Verification")


# --- the one-click turn-on ----------------------------------------------------------------


def test_after_the_first_method_one_click_turns_2sv_on(visitor, people):
    page = visitor.page
    parent = signed_in_window(visitor, people, "Olive Once")
    expect(status_line(visitor.page)).to_contain_text("2-Step Verification is off.")
    expect(turn_on_button(visitor)).to_have_count(0)  # nothing to turn on with yet

    add_by_code(visitor, "Email", "Email address", parent.email, parent.email)
    offer = page.locator("#turn-on-offer")
    expect(offer).to_contain_text("Email is set up.")
    expect(offer).to_contain_text("One more step")
    expect(status_line(page)).to_contain_text("2-Step Verification is off.")
    if visitor.js:
        expect(offer).to_be_focused()  # the message of what was just saved
    visitor.check("first method saved: the offer to turn 2SV on")

    turn_on_button(visitor).click()
    switched_on = page.get_by_role("switch", name="2-Step Verification", checked=True)
    visitor.through_recovery_codes(then=switched_on)
    expect(status_line(page)).to_contain_text("2-Step Verification is on.")
    expect(turn_on_button(visitor)).to_have_count(0)
    assert people.reload(parent).two_step_enabled


def test_the_turn_on_offer_swaps_the_switch_on_in_place(open_browser, people):
    """Once the recovery codes exist, the offer's button flips the switch where it is, and
    the focus lands on the switch."""
    visitor = open_browser(js=True)
    page = visitor.page
    typed, phone = people.phone_number()
    parent = signed_in_window(visitor, people, "Ines Inplace")
    add_by_code(visitor, "Email", "Email address", parent.email, parent.email)
    turn_on_button(visitor).click()
    switch = page.get_by_role("switch", name="2-Step Verification")
    visitor.through_recovery_codes(
        then=page.get_by_role("switch", name="2-Step Verification", checked=True)
    )
    # Off again, the email deleted, a text message added: the offer comes back.
    with visitor.in_place():
        switch.click()
        expect(switch).to_have_attribute("aria-checked", "false")
    with visitor.in_place():
        saved_methods(page).filter(has_text="Email").get_by_role("button", name="Delete").click()
        page.locator(".confirm-delete").get_by_role("button", name="Delete").click()
        expect(saved_methods(page)).to_have_count(0)
    add_by_code(visitor, "Text Message", "Mobile number", typed, phone)
    with visitor.in_place():
        turn_on_button(visitor).click()
        expect(switch).to_have_attribute("aria-checked", "true")
    expect(switch).to_be_focused()
    expect(status_line(page)).to_contain_text("2-Step Verification is on.")
    assert people.reload(parent).two_step_enabled


# --- focus after each swap (WCAG 2.4.3) -----------------------------------------------------


def test_focus_follows_each_swap(open_browser, people, live_server):
    visitor = open_browser(js=True)
    page = visitor.page
    typed, phone = people.phone_number()
    parent = people.family(name="Fern Focus", two_step=True)
    people.add_method(parent, "email", parent.email)
    people.add_method(parent, "sms", phone)

    # "Try another method": the first choice of the picker.
    visitor.sign_in(parent.email)
    expect(visitor.button(f"Text Message •••-•••-{phone[-4:]}")).to_be_visible()
    with visitor.in_place():
        visitor.button(f"Text Message •••-•••-{phone[-4:]}").click()
        expect(page.get_by_label("Verification code")).to_be_focused()
    with visitor.in_place():
        visitor.button("Try another method").click()
        first_choice = page.locator("form.picker button").first
        expect(first_choice).to_be_visible()
    expect(first_choice).to_be_focused()
    expect(page).to_have_title(re.compile("^Choose how to get your code"))
    with visitor.in_place():
        visitor.button(f"Text Message •••-•••-{phone[-4:]}").click()
        expect(page.get_by_label("Verification code")).to_be_visible()
    expect(page).to_have_title(re.compile("^Enter your verification code"))
    visitor.enter_code(live_server.wait_for_codes(phone, 2)[-1])
    visitor.expect_home("Fern Focus")
    visitor.open_two_step_window("Fern Focus")

    # Delete: the confirmation takes the focus; Cancel gives it back to the row's Delete.
    email_row = saved_methods(page).filter(has_text="Email")
    with visitor.in_place():
        email_row.get_by_role("button", name="Delete").click()
        confirmation = page.get_by_role("alert").filter(has_text="Delete Email?")
        expect(confirmation).to_be_visible()
    expect(confirmation).to_be_focused()
    with visitor.in_place():
        page.get_by_role("link", name="Cancel").click()
        expect(confirmation).to_have_count(0)
    expect(email_row.get_by_role("button", name="Delete")).to_be_focused()

    # Deleting: the message says what happened, and has the focus.
    with visitor.in_place():
        email_row.get_by_role("button", name="Delete").click()
        page.locator(".confirm-delete").get_by_role("button", name="Delete").click()
        expect(saved_methods(page)).to_have_count(1)
    expect(page.get_by_role("status").filter(has_text="Email was removed.")).to_be_focused()

    # A method saved: its message (with the offer, when 2SV is off) has the focus.
    add_by_code(visitor, "Email", "Email address", parent.email, parent.email)
    expect(page.get_by_role("status").filter(has_text="Email is set up.").first).to_be_focused()


# --- contrast (WCAG 1.4.11) -----------------------------------------------------------------

# The colour a control shows and the colour behind it, as the browser computed them.
COLOURS = """element => {
  const solid = colour => colour && !/rgba\\(.*, 0\\)$/.test(colour) && colour !== "transparent";
  let behind = element.parentElement;
  while (behind && !solid(getComputedStyle(behind).backgroundColor)) {
    behind = behind.parentElement;
  }
  const style = getComputedStyle(element);
  return {
    border: style.borderTopColor,
    background: style.backgroundColor,
    outline: style.outlineStyle === "none" ? "" : style.outlineColor,
    behind: behind ? getComputedStyle(behind).backgroundColor : "rgb(255, 255, 255)",
  };
}"""


def relative_luminance(css_colour: str) -> float:
    channels = re.findall(r"\d+", css_colour)[:3]
    assert len(channels) == 3, f"not an rgb() colour: {css_colour!r}"
    red, green, blue = (int(part) for part in channels)

    def linear(channel: int) -> float:
        value = channel / 255
        return value / 12.92 if value <= 0.03928 else ((value + 0.055) / 1.055) ** 2.4

    return 0.2126 * linear(red) + 0.7152 * linear(green) + 0.0722 * linear(blue)


def contrast(first: str, second: str) -> float:
    lighter, darker = sorted((relative_luminance(first), relative_luminance(second)))[::-1]
    return (lighter + 0.05) / (darker + 0.05)


def test_focus_ring_and_control_borders_have_3_to_1_contrast(open_browser, people):
    visitor = open_browser(js=True)
    page = visitor.page
    parent = signed_in_window(visitor, people, "Cora Contrast")
    people.add_method(parent, "totp")
    page.reload()
    visitor.settle()
    with visitor.in_place():
        page.get_by_role("tab", name="Email").click()
        email_box = page.get_by_label("Email address", exact=True)
        expect(email_box).to_be_visible()

    measured = {}
    colours = email_box.evaluate(COLOURS)
    measured["input border"] = contrast(colours["border"], colours["behind"])
    colours = visitor.button("Send code").evaluate(COLOURS)
    measured["button border"] = contrast(colours["border"], colours["behind"])
    colours = page.locator(".switch-track").evaluate(COLOURS)
    measured["switch track, off"] = contrast(colours["background"], colours["behind"])
    delete = saved_methods(page).get_by_role("button", name="Delete")
    colours = delete.evaluate(COLOURS)
    measured["Delete border"] = contrast(colours["border"], colours["behind"])

    # The focus ring, reached with the keyboard, on a field and on a button.
    email_box.focus()
    colours = email_box.evaluate(COLOURS)
    assert colours["outline"], "the focused field shows no focus ring"
    measured["focus ring on a field"] = contrast(colours["outline"], colours["behind"])
    page.keyboard.press("Tab")
    send = visitor.button("Send code")
    expect(send).to_be_focused()
    colours = send.evaluate(COLOURS)
    assert colours["outline"], "the focused button shows no focus ring"
    measured["focus ring on a button"] = contrast(colours["outline"], colours["behind"])

    low = {name: round(ratio, 2) for name, ratio in measured.items() if ratio < MINIMUM_CONTRAST}
    assert not low, f"Below {MINIMUM_CONTRAST}:1 — {low}"


# --- small screens ----------------------------------------------------------------------------


@pytest.mark.parametrize("width", [320, 360])
def test_every_method_tab_is_in_sight_on_a_narrow_phone(open_browser, people, width):
    visitor = open_browser(js=True, width=width, height=740)
    page = visitor.page
    signed_in_window(visitor, people, f"Nel Narrow{width}")
    tabs = page.get_by_role("tab")
    assert tabs.count() >= 3
    for index in range(tabs.count()):
        tab = tabs.nth(index)
        box = tab.bounding_box()
        name = tab.inner_text()
        assert box is not None, f"{name} is not shown"
        assert box["x"] >= 0 and box["x"] + box["width"] <= width, (
            f"{name} sticks out of a {width} px screen: {box}"
        )
        # Not cut off inside a scrolling tab list: the whole label is there to read.
        assert tab.evaluate("tab => tab.scrollWidth <= tab.clientWidth"), f"{name} is cut"
    tablist = page.get_by_role("tablist")
    assert tablist.evaluate("list => list.scrollWidth <= list.clientWidth")


# --- the setup key and the profile menu -----------------------------------------------------


def test_the_setup_key_has_a_visible_label_and_a_copy_button(open_browser, people, live_server):
    visitor = open_browser(js=True)
    visitor.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server.url)
    page = visitor.page
    signed_in_window(visitor, people, "Kit Key")
    with visitor.in_place():
        visitor.button("Set up authenticator app").click()
        key = page.locator("#setup-key")
        expect(key).to_be_visible()
    expect(page.get_by_text("Setup key", exact=True)).to_be_visible()
    visitor.button("Copy").click()
    expect(page.get_by_role("status").filter(has_text="Setup key copied")).to_be_visible()
    copied = page.evaluate("() => navigator.clipboard.readText()")
    assert copied == key.inner_text().replace(" ", "") and len(copied) >= 16


def test_the_setup_key_without_javascript_is_text_and_no_copy_button(open_browser, people):
    visitor = open_browser(js=False)
    page = visitor.page
    signed_in_window(visitor, people, "Nora Nojs")
    visitor.button("Set up authenticator app").click()
    expect(page.locator("#setup-key")).to_be_visible()
    expect(page.get_by_text("Setup key", exact=True)).to_be_visible()
    expect(visitor.button("Copy")).to_be_hidden()


def test_the_profile_menu_is_a_disclosure_that_escape_closes(open_browser, people):
    visitor = open_browser(js=True)
    page = visitor.page
    parent = people.family(name="Dot Disclosure")
    visitor.sign_in(parent.email)
    visitor.expect_home("Dot Disclosure")
    assert page.get_by_role("menu").count() == 0 and page.get_by_role("menuitem").count() == 0
    opener = page.get_by_label("Profile menu for Dot Disclosure")
    opener.focus()
    page.keyboard.press("Enter")
    menu_link = page.get_by_role("navigation", name="Main").get_by_role(
        "link", name="2-Step Verification"
    )
    expect(menu_link).to_be_visible()
    page.keyboard.press("Tab")
    page.keyboard.press("Escape")
    expect(menu_link).to_be_hidden()
    expect(opener).to_be_focused()
