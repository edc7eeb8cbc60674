"""Nothing secret reaches the logs: after a person adds an authenticator app, an email address
and a phone, then signs in once with an authenticator code and once with an emailed code,
every log record (every logger at DEBUG, the SQL query log included, and the JSON request
lines) is searched for the codes, the authenticator key, the password and the full phone
number. None may appear."""

import html
import logging
import re
from datetime import UTC

import pyotp
import pytest

from blueprints import request_log
from models.outbox import OutboxMessage
from models.verification import EMAIL, TOTP, VerificationMethod
from tests.conftest import PASSWORD

PHONE_TYPED = "(201) 555-0123"
# The full number in every shape it could be written; its last four digits alone are the
# masked form the product shows, so they are not a leak.
PHONE_FORMS = ("+12015550123", "2015550123", "201-555-0123", "201) 555-0123", "201 555 0123")


def last_code(to: str) -> str:
    message = (
        OutboxMessage.select()
        .where(OutboxMessage.to == to)
        .order_by(OutboxMessage.id.desc())
        .first()
    )
    return re.search(r"\b(\d{6})\b", message.body).group(1)


def totp_at(secret: str, clock, steps: int = 0) -> str:
    return pyotp.TOTP(secret).at(clock().replace(tzinfo=UTC), counter_offset=steps)


@pytest.fixture
def every_log(caplog, capfd):
    """Every logger that has a level of its own is turned to DEBUG too (the app's logger is
    INFO by default), so nothing is filtered out before it is searched."""
    caplog.set_level(logging.DEBUG)
    for name, logger in list(logging.root.manager.loggerDict.items()):
        if isinstance(logger, logging.Logger) and logger.level not in (
            logging.NOTSET,
            logging.DEBUG,
        ):
            caplog.set_level(logging.DEBUG, logger=name)
    formatter = request_log.JsonFormatter()

    def collected() -> str:
        lines = []
        for record in caplog.records:
            lines.append(record.getMessage())
            lines.append(formatter.format(record))  # as the JSON log line, traceback included
            lines.append(repr(record.args))
        out, err = capfd.readouterr()
        lines += [out, err]
        return "\n".join(lines)

    return collected


def test_codes_keys_passwords_and_phone_numbers_never_reach_the_logs(
    browser, factory, clock, every_log
):
    user = factory.family(email="pat@example.com")
    codes = []

    # Add an authenticator app, an email address and a phone, then turn 2SV on.
    assert browser.login("pat@example.com").status_code == 303
    page = browser.post("/profile/2sv/methods/authenticator/start")
    shown = re.search(r'class="secret-key"[^>]*>([A-Z2-7 ]+)<', html.unescape(page.text))
    secret = shown.group(1).replace(" ", "")
    codes.append(totp_at(secret, clock))
    confirmed = browser.post("/profile/2sv/methods/authenticator/confirm", {"code": codes[-1]})
    assert confirmed.status_code == 303

    browser.post("/profile/2sv/methods/email/send", {"destination": "pat@example.com"})
    codes.append(last_code("pat@example.com"))
    assert (
        browser.post("/profile/2sv/methods/email/confirm", {"code": codes[-1]}).status_code == 303
    )

    clock.advance(seconds=31)  # the per-destination cooldown
    browser.post("/profile/2sv/methods/text-message/send", {"destination": PHONE_TYPED})
    codes.append(last_code("+12015550123"))
    confirmed = browser.post("/profile/2sv/methods/text-message/confirm", {"code": codes[-1]})
    assert confirmed.status_code == 303
    assert VerificationMethod.select().where(VerificationMethod.user == user).count() == 3
    assert browser.post("/profile/2sv/toggle", {"enabled": "on"}).status_code in (200, 303)
    assert browser.logout().status_code == 303

    # Sign in with the authenticator app (a later time step: the enrolment's is used).
    clock.advance(seconds=30)
    assert browser.login("pat@example.com").status_code == 303
    totp_method = VerificationMethod.get(user=user, kind=TOTP)
    browser.post("/login/verify/method", {"method_id": totp_method.id})
    codes.append(totp_at(secret, clock))
    assert browser.post("/login/verify", {"code": codes[-1]}).status_code == 303
    assert browser.get("/profile").status_code == 200
    assert browser.logout().status_code == 303

    # Sign in with a code sent by email.
    clock.advance(seconds=31)
    assert browser.login("pat@example.com").status_code == 303
    email_method = VerificationMethod.get(user=user, kind=EMAIL)
    browser.post("/login/verify/method", {"method_id": email_method.id})
    codes.append(last_code("pat@example.com"))
    assert browser.post("/login/verify", {"code": codes[-1]}).status_code == 303
    assert browser.get("/profile").status_code == 200

    logged = every_log()
    # The logs were really captured: the SQL query log and a JSON line per request.
    assert '"event": "request"' in logged and "SELECT" in logged

    grouped = " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))
    found = [
        what
        for what, needle in [
            ("the authenticator key", secret),
            ("the authenticator key (grouped)", grouped),
            ("the authenticator key (lower case)", secret.lower()),
            ("the password", PASSWORD),
            *[("the phone number", form) for form in PHONE_FORMS],
        ]
        if needle in logged
    ]
    found += [
        f"code {code}"
        for code in codes
        if re.search(rf"(?<![0-9A-Za-z]){code}(?![0-9A-Za-z])", logged)
    ]
    assert found == [], f"in the logs: {found}"
