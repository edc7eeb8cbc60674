"""A person at a browser window: finds things by role, label and name (SPEC, "Words on the
screen"), and checks every page and swapped-in state for accessibility and layout.

Every state a flow reaches is `check()`ed: axe-core finds no serious or critical violation, and
the page has no horizontal scroll at 360 px or at 1280 px wide. The window also records what
the browser itself complains about: a Content-Security-Policy violation or an uncaught
JavaScript error fails the test (the `open_browser` fixture asserts it at the end).
"""

import re
import secrets
from contextlib import contextmanager

from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import BrowserContext, Page, expect

from tests.e2e.live import PASSWORD, LiveServer

FAILING_IMPACTS = {"serious", "critical"}
WIDTHS = (360, 1280)
_axe = Axe()


class Visitor:
    """One browser window (its own cookies) with JavaScript on or off."""

    def __init__(self, context: BrowserContext, server: LiveServer, *, js: bool, auditor):
        self.context = context
        self.server = server
        self.js = js
        self.page: Page = context.new_page()
        self.page.set_default_timeout(10_000)
        self.problems: list[str] = []
        self.checked: list[str] = []
        self._auditor_browser = auditor
        self._auditor_page: Page | None = None
        self.page.on("console", self._on_console)
        self.page.on("pageerror", lambda error: self.problems.append(f"JavaScript error: {error}"))

    def _on_console(self, message) -> None:
        text = message.text
        if "Content Security Policy" in text or "Content-Security-Policy" in text:
            self.problems.append(f"CSP violation on {self.page.url}: {text}")

    def close(self) -> None:
        if self._auditor_page is not None:
            self._auditor_page.context.close()
        self.context.close()

    # --- moving around ------------------------------------------------------------------

    def goto(self, path: str) -> Page:
        self.page.goto(path)
        return self.page

    def button(self, name: str, exact: bool = True):
        return self.page.get_by_role("button", name=name, exact=exact)

    def sign_in(self, email: str, password: str = PASSWORD, check: bool = False) -> None:
        """Type the email and password on the sign-in page and press Sign in."""
        page = self.goto("/login")
        expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
        if check:
            self.check("sign-in page")
        page.get_by_label("Email", exact=True).fill(email)
        page.get_by_label("Password", exact=True).fill(password)
        self.button("Sign in").click()

    def open_profile_menu(self, name: str) -> None:
        self.page.get_by_label(f"Profile menu for {name}").click()

    def sign_out(self, name: str) -> None:
        """Profile icon -> Sign out, back at the sign-in page."""
        self.open_profile_menu(name)
        self.page.get_by_role("navigation", name="Main").get_by_role(
            "button", name="Sign out"
        ).click()
        expect(self.page.get_by_role("heading", name="Sign in")).to_be_visible()

    def open_two_step_window(self, name: str) -> None:
        """Profile icon -> 2-Step Verification (SPEC, "The 2-Step Verification window")."""
        self.open_profile_menu(name)
        self.page.get_by_role("navigation", name="Main").get_by_role(
            "link", name="2-Step Verification"
        ).click()
        heading = self.page.get_by_role("heading", name="2-Step Verification", level=1)
        expect(heading).to_be_visible()
        self.page.wait_for_load_state()  # as expect_home: the page's scripts have run

    def enter_code(self, code: str) -> None:
        self.page.get_by_label("Verification code").fill(code)
        self.button("Verify").click()

    def through_recovery_codes(self, then) -> None:
        """When 2SV first comes on, the recovery codes may be shown once, on a page of their
        own: check that page and go on. `then` is what shows next (or instead)."""
        sheet = self.page.get_by_role("heading", name="Save your recovery codes")
        expect(sheet.or_(then)).to_be_visible()
        if sheet.is_visible():
            self.check("recovery codes, shown once")
            self.button("I've saved my codes").click()
        expect(then).to_be_visible()

    def home_heading(self, name: str):
        return self.page.get_by_role("heading", name=f"Welcome, {name}")

    def expect_home(self, name: str) -> None:
        """The home page shows, and its deferred scripts have run: the heading can show
        before app.js listens for keys, and a key pressed then would go unheard."""
        expect(self.home_heading(name)).to_be_visible()
        self.page.wait_for_load_state()

    # --- HTMX swaps ---------------------------------------------------------------------

    def mark_document(self) -> str:
        """Put a marker on `window`; it survives HTMX swaps and is gone after a page load."""
        marker = secrets.token_hex(8)
        self.page.evaluate("marker => { window.__twostepDocument = marker; }", marker)
        return marker

    def same_document(self, marker: str) -> bool:
        return self.page.evaluate("() => window.__twostepDocument") == marker

    # --- delivery status ----------------------------------------------------------------

    def bounce_alert(self, masked: str):
        """The code box's alert saying the code sent to `masked` bounced."""
        return self.page.get_by_role("alert").filter(
            has_text=f"We couldn't deliver the code to {masked}: the address bounced."
        )

    def expect_reported(self, alert, marker: str, load_again) -> None:
        """A delivery report turns `alert` on: with JavaScript by the status box's polling,
        without a page load (`marker` from mark_document() before the report); without
        JavaScript nothing changes until `load_again()` loads the page again."""
        if self.js:
            expect(alert).to_be_visible()  # the next poll (every 3 s) brings it
            assert self.same_document(marker), "The alert came with a page load"
        else:
            expect(alert).to_have_count(0)
            load_again()
            expect(alert).to_be_visible()

    @contextmanager
    def in_place(self):
        """With JavaScript on, the actions inside swap part of the page: the document is not
        reloaded (a marker set on `window` before is still there after). Without JavaScript
        the same actions are plain form posts and full pages."""
        if not self.js:
            yield
            self.page.wait_for_load_state()
            return
        # htmx takes over the page's forms once its deferred script has run: an action before
        # then would be a plain form post.
        self.page.wait_for_load_state()
        marker = self.mark_document()
        yield
        self.settle()
        assert self.same_document(marker), (
            f"The page reloaded at {self.page.url}; a partial swap was expected"
        )

    @contextmanager
    def full_page(self):
        """The actions inside load a new page (with JavaScript: HX-Redirect or a link)."""
        if not self.js:
            yield
            self.page.wait_for_load_state()
            return
        marker = self.mark_document()
        yield
        self.page.wait_for_function(
            "marker => window.__twostepDocument !== marker", arg=marker, polling=100
        )
        self.page.wait_for_load_state()
        self.settle()

    def settle(self) -> None:
        """Wait until htmx has finished its request, swap and settle."""
        if self.js:
            self.page.wait_for_function(
                "() => document.readyState === 'complete' && !document.querySelector("
                "'.htmx-request, .htmx-swapping, .htmx-settling, .htmx-added')",
                polling=50,
            )
        else:
            self.page.wait_for_load_state()

    # --- accessibility and layout -------------------------------------------------------

    def check(self, state: str) -> None:
        """axe finds nothing serious or critical, and nothing scrolls sideways at 360 px
        or at 1280 px."""
        self.settle()
        self.checked.append(state)
        violations = self._axe_violations()
        failing = [each for each in violations if each.get("impact") in FAILING_IMPACTS]
        assert not failing, f"axe on {state} ({self.page.url}):\n" + describe(failing)
        self._check_widths(state)

    def _axe_violations(self) -> list[dict]:
        if self.js:
            return _axe.run(self.page).response["violations"]
        # axe needs JavaScript to run; without it, audit an exact copy of this page's markup
        # in a JavaScript-on window (stylesheets from the live server, scripts left out).
        auditor = self._auditor()
        auditor.set_content(static_copy(self.page.content(), self.server.url), wait_until="load")
        return _axe.run(auditor).response["violations"]

    def _auditor(self) -> Page:
        if self._auditor_page is None:
            context = self._auditor_browser.new_context(
                viewport=self.page.viewport_size, locale="en-US"
            )
            self._auditor_page = context.new_page()
        return self._auditor_page

    def _check_widths(self, state: str) -> None:
        original = self.page.viewport_size
        try:
            for width in WIDTHS:
                self.page.set_viewport_size({"width": width, "height": original["height"]})
                overflow = self.page.evaluate(
                    "() => document.documentElement.scrollWidth"
                    " - document.documentElement.clientWidth"
                )
                assert overflow <= 0, (
                    f"{state} ({self.page.url}) scrolls sideways by {overflow}px at {width}px wide"
                    f": {self._widest(width)}"
                )
        finally:
            self.page.set_viewport_size(original)

    def _widest(self, width: int) -> str:
        """The elements that stick out past the right edge (for the failure message)."""
        return self.page.evaluate(
            """width => Array.from(document.querySelectorAll('body *'))
                .filter(el => el.getBoundingClientRect().right > width + 1)
                .slice(0, 5)
                .map(el => el.outerHTML.slice(0, 120)).join('\\n')""",
            width,
        )


_SCRIPT = re.compile(r"<script\b[^>]*>.*?</script>", re.DOTALL | re.IGNORECASE)


def static_copy(html: str, base_url: str) -> str:
    """The page's markup without its scripts, with a <base> so its stylesheet still loads."""
    html = _SCRIPT.sub("", html)
    return re.sub(r"<head>", f'<head><base href="{base_url}/">', html, count=1)


def describe(violations: list[dict]) -> str:
    lines = []
    for violation in violations:
        lines.append(f"- {violation['id']} ({violation['impact']}): {violation['help']}")
        for node in violation["nodes"][:5]:
            lines.append(f"    {node['target']}: {node['html'][:160]}")
    return "\n".join(lines)
