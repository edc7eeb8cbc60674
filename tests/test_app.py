"""The factory's modes, the demo data and the command line."""

from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from app import ConfigurationError, create_app
from models.people import User
from services.account.accounts import DEMO_LOGINS

EXPECTED_2SV = {
    "admin@example.com": True,
    "teacher@example.com": True,
    "parent@example.com": False,
    "both@example.com": True,
    "maple-admin@example.com": True,
    "maple-parent@example.com": False,
}


def snapshot():
    from models.people import Center, Membership

    return (
        sorted(c.name for c in Center.select()),
        sorted((u.email, u.name) for u in User.select()),
        sorted(
            (m.user.email, m.center.name, m.role, m.is_admin)
            for m in Membership.select().join(User)
        ),
    )


def test_seed_demo_twice_gives_the_same_data(app, db):
    runner = app.test_cli_runner()
    first = runner.invoke(args=["seed-demo"])
    assert first.exit_code == 0, first.output
    once = snapshot()
    second = runner.invoke(args=["seed-demo"])
    assert second.exit_code == 0
    assert snapshot() == once
    assert len(once[1]) == len(DEMO_LOGINS) == 6
    assert {c for c in once[0]} == {"Sunshine Early Learning", "Maple Grove Preschool"}


def test_requires_2sv_matches_the_demo_table(app, db):
    app.test_cli_runner().invoke(args=["seed-demo"])
    for email, expected in EXPECTED_2SV.items():
        assert User.by_email(email).requires_2sv is expected, email
    assert User.by_email("admin@example.com").is_admin
    assert not User.by_email("teacher@example.com").is_admin


def test_demo_login_signs_in_with_the_demo_password(app, browser):
    app.test_cli_runner().invoke(args=["seed-demo"])
    response = browser.login("parent@example.com", "twostep-demo")
    assert response.status_code == 303
    assert "Pat Parent" in browser.get("/profile").get_data(as_text=True)


def test_init_db_is_idempotent(app):
    runner = app.test_cli_runner()
    assert runner.invoke(args=["init-db"]).exit_code == 0
    assert runner.invoke(args=["init-db"]).exit_code == 0


def test_create_user_command(app, db):
    runner = app.test_cli_runner()
    result = runner.invoke(
        args=[
            "create-user",
            "--email",
            "New@Example.com",
            "--name",
            "Nia New",
            "--center",
            "Sunshine Early Learning",
            "--role",
            "staff",
        ],
        input="a long enough password\na long enough password\n",
    )
    assert result.exit_code == 0, result.output
    user = User.by_email("new@example.com")
    assert user.name == "Nia New" and user.requires_2sv


def test_create_user_refuses_a_short_password(app, db):
    result = app.test_cli_runner().invoke(
        args=[
            "create-user",
            "--email",
            "x@example.com",
            "--name",
            "X",
            "--center",
            "C",
            "--role",
            "family",
        ],
        input="short\nshort\n",
    )
    assert result.exit_code != 0
    assert "at least 12 characters" in result.output
    assert User.by_email("x@example.com") is None


def test_production_refuses_to_start_without_secret_key(monkeypatch, tmp_path):
    monkeypatch.delenv("SECRET_KEY", raising=False)
    with pytest.raises(ConfigurationError, match="SECRET_KEY"):
        create_app({"TWOSTEP_ENV": "production", "DATABASE_URL": f"sqlite:///{tmp_path}/x.db"})


def production_settings(tmp_path, **settings) -> dict:
    return {
        "TWOSTEP_ENV": "production",
        "SECRET_KEY": "x" * 40,
        "ENCRYPTION_KEYS": Fernet.generate_key().decode(),
        "DATABASE_URL": f"sqlite:///{tmp_path}/x.db",
        **settings,
    }


@pytest.mark.parametrize(
    ("keys", "named"),
    [
        ({}, "SENDGRID_API_KEY and VONAGE_API_KEY and VONAGE_API_SECRET are not set"),
        ({"SENDGRID_API_KEY": "SG.test"}, "VONAGE_API_KEY and VONAGE_API_SECRET are not set"),
        (
            {"VONAGE_API_KEY": "key", "VONAGE_API_SECRET": "secret"},
            "SENDGRID_API_KEY is not set",
        ),
    ],
)
def test_production_refuses_to_start_without_delivery_keys(monkeypatch, tmp_path, keys, named):
    """Nobody would receive a code: production says which keys are missing, and the way out."""
    for name in ("SENDGRID_API_KEY", "VONAGE_API_KEY", "VONAGE_API_SECRET", "OUTBOX_IN_PRODUCTION"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ConfigurationError) as error:
        create_app(production_settings(tmp_path, **keys))
    assert named in str(error.value) and "OUTBOX_IN_PRODUCTION=1" in str(error.value)


def test_production_starts_with_delivery_keys_or_the_outbox_asked_for(monkeypatch, tmp_path):
    monkeypatch.delenv("OUTBOX_IN_PRODUCTION", raising=False)
    keys = {"SENDGRID_API_KEY": "SG.test", "VONAGE_API_KEY": "key", "VONAGE_API_SECRET": "secret"}
    assert create_app(production_settings(tmp_path, **keys)).config["PRODUCTION"]
    monkeypatch.setenv("OUTBOX_IN_PRODUCTION", "1")
    assert create_app(production_settings(tmp_path)).config["OUTBOX_IN_PRODUCTION"] is True
    # Development needs neither (the outbox is its default).
    monkeypatch.delenv("OUTBOX_IN_PRODUCTION")
    development = {"SECRET_KEY": "x" * 40, "DATABASE_URL": f"sqlite:///{tmp_path}/y.db"}
    assert not create_app(development).config["PRODUCTION"]


def test_production_sets_secure_cookies_and_hsts(tmp_path):
    app = create_app(production_settings(tmp_path, OUTBOX_IN_PRODUCTION=True))
    assert app.config["SESSION_COOKIE_SECURE"] is True
    response = app.test_client().get("/login")
    assert "max-age" in response.headers["Strict-Transport-Security"]


def test_development_generates_a_secret_key_once(monkeypatch, tmp_path):
    monkeypatch.delenv("SECRET_KEY", raising=False)
    config = {"DATABASE_URL": f"sqlite:///{tmp_path}/x.db"}
    first = create_app(config)
    key_file = first.instance_path + "/secret_key"
    second = create_app(config)
    assert first.config["SECRET_KEY"] == second.config["SECRET_KEY"]
    assert Path(key_file).read_text().strip() == first.config["SECRET_KEY"]


def test_pages_carry_security_headers(browser):
    response = browser.get("/login")
    csp = response.headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_unknown_page_is_a_friendly_404(browser):
    response = browser.get("/no/such/page")
    assert response.status_code == 404
    assert "Page not found" in response.get_data(as_text=True)
