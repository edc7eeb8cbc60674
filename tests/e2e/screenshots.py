"""Make the README's screenshots from the real app: `make screenshots` (or
`python -m tests.e2e.screenshots [OUTPUT_DIR]`) writes PNGs to docs/screenshots/.

It serves the app on 127.0.0.1 with a throwaway SQLite database, makes the demo people, and
drives Debian's Chromium through the flows, so the pictures can be made again after any change
to the pages.
"""

import shutil
import sys
import tempfile
from pathlib import Path

from playwright.sync_api import Page, expect, sync_playwright

from tests.e2e.live import CHROMIUM_ARGS, PASSWORD, LiveServer

OUTPUT = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
DESKTOP = {"width": 1100, "height": 760}
PHONE = {"width": 360, "height": 740}


def sign_in(page: Page, email: str) -> None:
    page.goto("/login")
    page.get_by_label("Email", exact=True).fill(email)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()


def settle(page: Page) -> None:
    page.wait_for_load_state()
    page.wait_for_function(
        "() => !document.querySelector('.htmx-request, .htmx-swapping, .htmx-settling')"
    )
    # The focus ring of the last click is not part of the picture.
    page.evaluate("() => document.activeElement && document.activeElement.blur()")


def make(output: Path) -> list[Path]:
    output.mkdir(parents=True, exist_ok=True)
    written = []
    with tempfile.TemporaryDirectory() as folder:
        # The real cooldown, so the code box says what it says in use ("in 30 seconds").
        server = LiveServer(Path(folder) / "screenshots.db", CODE_RESEND_COOLDOWN=30).start()
        people = server.people
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(
                    executable_path=shutil.which("chromium"), args=CHROMIUM_ARGS
                )

                def window(size=DESKTOP) -> Page:
                    context = browser.new_context(
                        base_url=server.url, viewport=size, locale="en-US", timezone_id="UTC"
                    )
                    return context.new_page()

                def shoot(page: Page, name: str, target=None, full_page=False) -> None:
                    settle(page)
                    path = output / name
                    options = {"full_page": True} if full_page else {}
                    (target or page).screenshot(path=str(path), animations="disabled", **options)
                    written.append(path)

                # A parent with the authenticator app, an email and a phone; 2SV on.
                parent = people.family(name="Pat Parent", email="parent@example.com", two_step=True)
                phone = "+12015550123"  # SPEC's demo number
                people.add_method(parent, "email", parent.email)
                people.add_method(parent, "sms", phone)

                # 1. The method tabs: adding the authenticator app (QR code and key).
                page = window()
                sign_in(page, parent.email)
                page.get_by_role("button", name="Email p•••@example.com").click()
                expect(page.get_by_label("Verification code")).to_be_visible()
                page.get_by_label("Verification code").fill(server.last_code(parent.email))
                page.get_by_role("button", name="Verify").click()
                expect(page.get_by_role("heading", name="Welcome, Pat Parent")).to_be_visible()
                page.goto("/profile/2sv")
                page.get_by_role("button", name="Set up authenticator app").click()
                expect(page.locator("#setup-key")).to_be_visible()
                shoot(
                    page,
                    "method-tabs.png",
                    page.get_by_role("region", name="Add a verification method"),
                )

                # 2. The 2SV window: status, switch, the methods saved.
                secret = page.locator("#setup-key").inner_text().replace(" ", "")
                page.get_by_label("Verification code").fill(server.totp_code(secret))
                page.get_by_role("button", name="Verify").click()
                expect(
                    page.get_by_role("region", name="Your verification methods")
                    .get_by_role("listitem")
                    .filter(has_text="Authenticator App")
                ).to_be_visible()
                page.evaluate("() => window.scrollTo(0, 0)")
                shoot(page, "two-step-window.png")
                page.context.close()

                # 3. The sign-in picker: three methods, destinations masked.
                server.next_totp_step()
                page = window()
                sign_in(page, parent.email)
                expect(page.get_by_role("button", name="Authenticator App")).to_be_visible()
                shoot(page, "sign-in-picker.png")

                # 4. The code box on a phone, 360 px wide.
                phone_page = window(PHONE)
                server.clock.advance(seconds=2)
                sign_in(phone_page, parent.email)
                phone_page.get_by_role("button", name=f"Text Message •••-•••-{phone[-4:]}").click()
                expect(phone_page.get_by_label("Verification code")).to_be_visible()
                shoot(phone_page, "sign-in-code-phone.png", full_page=True)

                # 5. The admin reset: a staff member's page, the confirmation.
                admin = people.admin(name="Ada Admin", email="admin@example.com", two_step=True)
                people.add_method(admin, "email", admin.email)
                teacher = people.staff(
                    name="Terry Teacher", email="teacher@example.com", two_step=True
                )
                people.add_method(teacher, "totp")
                people.add_method(teacher, "sms", people.phone_number()[1])
                page = window({"width": DESKTOP["width"], "height": 900})
                sign_in(page, admin.email)
                expect(page.get_by_label("Verification code")).to_be_visible()
                page.get_by_label("Verification code").fill(server.last_code(admin.email))
                page.get_by_role("button", name="Verify").click()
                page.get_by_role("link", name="People", exact=True).first.click()
                page.get_by_role("link", name="Terry Teacher").click()
                page.get_by_role("region", name="2-Step Verification").get_by_role(
                    "button", name="Reset"
                ).click()
                expect(
                    page.get_by_role("heading", name="Reset 2-Step Verification for Terry Teacher?")
                ).to_be_visible()
                shoot(page, "admin-reset.png")
                browser.close()
        finally:
            server.stop()
    return written


def main() -> None:
    output = Path(sys.argv[1]) if len(sys.argv) > 1 else OUTPUT
    for path in make(output):
        print(path)


if __name__ == "__main__":
    main()
