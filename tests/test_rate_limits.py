"""Per-IP limits (Flask-Limiter) on sending and checking codes, with memory:// and Redis."""

import pytest

from models.outbox import OutboxMessage


def redis_answers() -> bool:
    try:
        import redis

        return bool(redis.Redis(host="127.0.0.1", port=6379, socket_timeout=1).ping())
    except Exception:
        return False


STORAGES = [
    pytest.param("memory://", id="memory"),
    pytest.param(
        "redis://127.0.0.1:6379/14",
        id="redis",
        marks=[
            pytest.mark.redis,
            pytest.mark.skipif(not redis_answers(), reason="no Redis answers on 127.0.0.1:6379"),
        ],
    ),
]


@pytest.fixture(params=STORAGES)
def app_config(request):
    return {
        "RATELIMIT_STORAGE_URI": request.param,
        "SEND_CODES_PER_IP": "3 per hour",
        "SIGN_IN_ATTEMPTS_PER_IP": "4 per minute",
        "CODE_RESEND_COOLDOWN": 0,
    }


@pytest.fixture
def limited(app, browser, factory):
    from blueprints.extensions import limiter

    with app.app_context():
        limiter.reset()
    factory.family(email="pat@example.com")
    browser.login("pat@example.com")
    yield browser
    with app.app_context():
        limiter.reset()


def test_sending_codes_is_limited_per_ip(limited):
    for number in range(3):
        response = limited.post(
            "/profile/2sv/methods/email/send", {"destination": f"pat{number}@example.com"}
        )
        assert response.status_code == 200
    refused = limited.post("/profile/2sv/methods/email/send", {"destination": "x@example.com"})
    assert refused.status_code == 429
    assert "Try again in" in refused.get_data(as_text=True)
    assert int(refused.headers["Retry-After"]) > 0
    assert OutboxMessage.select().count() == 3


def test_code_attempts_are_limited_per_ip(limited):
    limited.post("/profile/2sv/methods/email/send", {"destination": "pat@example.com"})
    statuses = [
        limited.post("/profile/2sv/methods/email/confirm", {"code": "000000"}).status_code
        for _ in range(5)
    ]
    assert statuses[:4] == [422] * 4
    assert statuses[4] == 429


def test_a_refusal_inside_a_component_goes_to_the_toast(limited):
    """With HTMX, a per-IP 429 does not replace the tab with an error page: the message is
    sent to the page's toast (HX-Retarget) and the tab, with what was typed, stays."""
    for number in range(3):
        limited.post(
            "/profile/2sv/methods/email/send",
            {"destination": f"pat{number}@example.com"},
            htmx=True,
        )
    refused = limited.post(
        "/profile/2sv/methods/email/send", {"destination": "x@example.com"}, htmx=True
    )
    assert refused.status_code == 429
    assert refused.headers["HX-Retarget"] == "#toast"
    assert refused.headers["HX-Reswap"] == "outerHTML"
    assert int(refused.headers["Retry-After"]) > 0
    body = refused.get_data(as_text=True)
    assert body.startswith('<div id="toast"') and 'role="alert"' in body
    assert "Try again in" in body and "<html" not in body

    # Without HTMX (JavaScript off) the same refusal is a whole page saying the same.
    page = limited.post("/profile/2sv/methods/email/send", {"destination": "x@example.com"})
    assert page.status_code == 429 and "<html" in page.get_data(as_text=True)
    assert "HX-Retarget" not in page.headers


def test_choosing_the_authenticator_spends_no_send_budget(app, browser, factory):
    """The picker's authenticator choice sends nothing, so it is not counted as a send."""
    from blueprints.extensions import limiter
    from models import crypto
    from models.verification import EMAIL, TOTP, VerificationMethod

    with app.app_context():
        limiter.reset()
    user = factory.family(email="pat@example.com", two_step=True)
    authenticator = VerificationMethod.create(
        user=user, kind=TOTP, secret=crypto.encrypt("JBSWY3DPEHPK3PXP")
    )
    email = VerificationMethod.create(user=user, kind=EMAIL, destination="pat@example.com")
    browser.login("pat@example.com")
    for _ in range(5):  # more than SEND_CODES_PER_IP (3)
        chosen = browser.post("/login/verify/method", {"method_id": str(authenticator.id)})
        assert chosen.status_code == 200
    for _ in range(3):
        assert browser.post("/login/verify/method", {"method_id": str(email.id)}).status_code == 200
    assert browser.post("/login/verify/method", {"method_id": str(email.id)}).status_code == 429
    with app.app_context():
        limiter.reset()


def limiter_checks_before_every_request(app) -> bool:
    from blueprints.extensions import limiter

    return any(
        getattr(hook, "__self__", None) is limiter for hook in app.before_request_funcs[None]
    )


def test_no_limiter_check_before_every_request_while_no_app_wide_limit_is_set(app, limited):
    # The limits sit on the views (above); the check before every request would find none.
    assert not limiter_checks_before_every_request(app)
    for _ in range(4):
        assert limited.post("/login/verify", {"code": "000000"}).status_code != 429
    assert limited.post("/login/verify", {"code": "000000"}).status_code == 429


def test_a_default_limit_keeps_the_check_before_every_request(tmp_path):
    from app import create_app
    from blueprints.extensions import limiter

    try:
        app = create_app(
            {
                "TESTING": True,
                "DATABASE_URL": f"sqlite:///{tmp_path / 'limits.db'}",
                "RATELIMIT_STORAGE_URI": "memory://",
                "RATELIMIT_DEFAULT": "2 per minute",
            }
        )
        assert limiter_checks_before_every_request(app)
        client = app.test_client()
        statuses = [client.get("/healthz").status_code for _ in range(3)]
        assert statuses[-1] == 429
    finally:
        # The limiter is the module's: the default limit would stay for every later app.
        limiter.limit_manager.set_default_limits([])
