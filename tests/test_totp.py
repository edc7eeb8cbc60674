"""Authenticator codes: RFC 6238 vectors, clock drift, steps used once, keys and QR codes."""

import base64
import re
from datetime import UTC, datetime, timedelta

import pyotp
import pytest

from models import crypto
from models.verification import TOTP, VerificationMethod
from services.methods import totp
from services.methods.totp import TotpResult

RFC_SECRET = base64.b32encode(b"12345678901234567890").decode()

# RFC 6238 Appendix B, SHA-1: the last six digits of the eight-digit codes.
RFC_VECTORS = [
    (59, "287082"),
    (1111111109, "081804"),
    (1111111111, "050471"),
    (1234567890, "005924"),
    (2000000000, "279037"),
    (20000000000, "353130"),
]


@pytest.mark.parametrize(("unix_time", "code"), RFC_VECTORS)
def test_rfc_6238_test_vectors(unix_time, code):
    moment = datetime.fromtimestamp(unix_time, UTC)
    assert totp.matching_step(RFC_SECRET, code, at=moment) == unix_time // 30
    naive_utc = moment.replace(tzinfo=None)
    assert totp.matching_step(RFC_SECRET, code, at=naive_utc, drift=0) == unix_time // 30


def test_time_step_reads_naive_times_as_utc():
    assert totp.time_step(datetime(1970, 1, 1, 0, 1, 0)) == 2
    assert totp.time_step(datetime(1970, 1, 1, 0, 1, 0, tzinfo=UTC)) == 2


def test_new_secrets_are_160_bit_base32_and_differ():
    first, second = totp.new_secret(), totp.new_secret()
    assert first != second
    assert re.fullmatch(r"[A-Z2-7]{32}", first)
    assert len(base64.b32decode(first)) * 8 == 160


def test_grouped_in_fours():
    assert totp.grouped("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567") == (
        "ABCD EFGH IJKL MNOP QRST UVWX YZ23 4567"
    )


def test_provisioning_uri_names_the_issuer_and_the_login(db):
    secret = totp.new_secret()
    uri = totp.provisioning_uri(secret, "pat@example.com")
    assert uri.startswith("otpauth://totp/TwoStep:pat%40example.com?")
    assert f"secret={secret}" in uri
    assert "issuer=TwoStep" in uri
    parsed = pyotp.parse_uri(uri)
    assert (parsed.secret, parsed.issuer, parsed.name) == (secret, "TwoStep", "pat@example.com")


def test_qr_svg_is_inline_labelled_and_without_inline_styles(db):
    svg = totp.qr_svg(totp.provisioning_uri(totp.new_secret(), "pat@example.com"))
    assert svg.startswith("<svg ")
    assert svg.rstrip().endswith("</svg>")
    assert 'role="img"' in svg
    assert 'aria-label="QR code for your authenticator app"' in svg
    assert "style=" not in svg
    assert "<?xml" not in svg


def code_at(secret, moment: datetime) -> str:
    return pyotp.TOTP(secret).at(moment.replace(tzinfo=UTC))


def test_drift_of_one_step_either_way_but_not_two(clock):
    secret = totp.new_secret()
    moment = clock()
    step = totp.time_step(moment)
    for offset in (-1, 0, 1):
        code = code_at(secret, moment + timedelta(seconds=30 * offset))
        assert totp.matching_step(secret, code, at=moment) == step + offset
    two_steps_old = code_at(secret, moment - timedelta(seconds=60))
    assert totp.matching_step(secret, two_steps_old, at=moment) is None


@pytest.mark.parametrize("code", ["", "12345", "1234567", "abcdef", None])
def test_malformed_codes_match_nothing(code):
    assert totp.matching_step(RFC_SECRET, code, at=datetime(2026, 1, 1)) is None


@pytest.fixture
def secret():
    return totp.new_secret()


@pytest.fixture
def method(factory, secret):
    return VerificationMethod.create(user=factory.staff(), kind=TOTP, secret=crypto.encrypt(secret))


def test_a_code_from_the_app_for_the_current_step_works(method, secret, clock):
    assert totp.verify_method(method, code_at(secret, clock())) is TotpResult.OK
    saved = VerificationMethod.get_by_id(method.id)
    assert saved.last_totp_step == totp.time_step(clock())
    assert saved.last_used_at == clock()


def test_pasted_codes_with_a_space_work(method, secret, clock):
    code = code_at(secret, clock())
    assert totp.verify_method(method, f"{code[:3]} {code[3:]}") is TotpResult.OK


@pytest.mark.parametrize("offset", [-1, 1])
def test_a_code_one_step_off_works(method, secret, clock, offset):
    code = code_at(secret, clock() + timedelta(seconds=30 * offset))
    assert totp.verify_method(method, code) is TotpResult.OK


def test_a_code_two_steps_old_is_wrong(method, secret, clock):
    code = code_at(secret, clock() - timedelta(seconds=60))
    assert totp.verify_method(method, code) is TotpResult.WRONG


def test_a_wrong_code_is_wrong_and_changes_nothing(method, secret, clock):
    right = code_at(secret, clock())
    wrong = f"{(int(right) + 1) % 1_000_000:06d}"
    assert totp.verify_method(method, wrong) is TotpResult.WRONG
    assert VerificationMethod.get_by_id(method.id).last_totp_step == 0


def test_the_same_step_is_never_accepted_twice(method, secret, clock):
    code = code_at(secret, clock())
    assert totp.verify_method(method, code) is TotpResult.OK
    # Refused again: the very step last used, a repeat of a right code (not a guess).
    assert totp.verify_method(method, code) is TotpResult.JUST_USED
    # A second copy of the row (another request) cannot use it either.
    assert totp.verify_method(VerificationMethod.get_by_id(method.id), code) is (
        TotpResult.JUST_USED
    )
    clock.advance(seconds=30)
    assert totp.verify_method(method, code_at(secret, clock())) is TotpResult.OK


def test_a_step_older_than_the_last_used_is_refused(method, secret, clock):
    assert totp.verify_method(method, code_at(secret, clock())) is TotpResult.OK
    previous = code_at(secret, clock() - timedelta(seconds=30))
    assert totp.verify_method(method, previous) is TotpResult.REPLAYED


def test_enrolment_step_is_not_accepted_again_at_sign_in(factory, secret, clock):
    """SPEC Decisions 6: the step confirmed at enrolment is stored on the saved method."""
    step = totp.matching_step(secret, code_at(secret, clock()))
    method = VerificationMethod.create(
        user=factory.staff(), kind=TOTP, secret=crypto.encrypt(secret), last_totp_step=step
    )
    assert totp.verify_method(method, code_at(secret, clock())) is TotpResult.JUST_USED
    clock.advance(seconds=30)
    assert totp.verify_method(method, code_at(secret, clock())) is TotpResult.OK
