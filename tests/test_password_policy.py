"""The password policy: each rule with its message, the common-password list and its script."""

import importlib.util

import pytest

from models.people import User
from services.account import password_policy
from services.account.password_policy import IS_EMAIL, TOO_COMMON, TOO_LONG, TOO_SHORT, problems

EMAIL = "pat.parent@example.com"


@pytest.mark.parametrize(
    ("password", "message"),
    [
        ("", TOO_SHORT),
        ("elevenchars", TOO_SHORT),
        ("x" * 129, TOO_LONG),
        ("pat.parent@example.com", IS_EMAIL),
        ("  PAT.Parent@Example.com ", IS_EMAIL),
        ("pat.parent", TOO_SHORT),
        ("password1234", TOO_COMMON),
        ("Password1234", TOO_COMMON),
        ("P@ssw0rd1234", TOO_COMMON),
        ("qwerty123456", TOO_COMMON),
        ("123456789012", TOO_COMMON),
        ("iloveyou2024", TOO_COMMON),
        ("abcdefghijkl", TOO_COMMON),
        ("Sunshine 2024", TOO_COMMON),
    ],
)
def test_each_rule_refuses_with_its_message(password, message):
    assert message in problems(password, EMAIL)


def test_the_email_rule_covers_the_part_before_the_at():
    assert problems("patricia.parent", "patricia.parent@example.com") == [IS_EMAIL]


def test_the_messages_say_what_to_do():
    assert TOO_SHORT == "Use at least 12 characters."
    assert TOO_LONG == "Use at most 128 characters."
    assert "email address" in IS_EMAIL
    assert "too common" in TOO_COMMON


@pytest.mark.parametrize(
    "password",
    [
        "correct horse battery",
        "a long enough password",
        "x" * 128,
        "Jam-toast & 7 owls",
        "ÄÖÜ ñ 東京 long phrase",
    ],
)
def test_a_good_password_passes(password):
    assert problems(password, EMAIL) == []


def test_the_email_is_optional():
    assert problems("a long enough password") == []


def test_the_common_list_has_thousands_of_usable_entries():
    entries = password_policy.common_passwords()
    assert len(entries) > 3000
    assert all(
        password_policy.MIN_LENGTH <= len(entry) <= password_policy.MAX_LENGTH for entry in entries
    )
    assert all(entry == entry.lower() for entry in entries)


def test_the_common_list_is_what_its_script_generates():
    """The committed file is the script's output: regenerate it after changing the script."""
    path = password_policy.COMMON_PASSWORDS_FILE.with_name("make_common_passwords.py")
    spec = importlib.util.spec_from_file_location("make_common_passwords", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    expected = script.render(script.generate())
    assert password_policy.COMMON_PASSWORDS_FILE.read_text(encoding="utf-8") == expected


@pytest.mark.parametrize(
    ("password", "message"),
    [
        ("password1234", "too common"),
        ("new@example.com", "email address"),
        ("short", "at least 12"),
    ],
)
def test_create_user_applies_the_policy(app, db, password, message):
    result = app.test_cli_runner().invoke(
        args=[
            "create-user",
            "--email",
            "new@example.com",
            "--name",
            "Nia New",
            "--center",
            "Sunshine Early Learning",
            "--role",
            "family",
        ],
        input=f"{password}\n{password}\n",
    )
    assert result.exit_code != 0
    assert message in result.output
    assert User.by_email("new@example.com") is None
