"""Fuzzing every form endpoint: hypothesis posts generated values (empty, huge, unicode,
control characters, wrong types, repeated fields) with a valid CSRF token to every POST route
of `app.url_map`, as an anonymous visitor, a half-signed-in one, a family, a staff member
and an admin. Never a 5xx; and when the answer is 4xx, the database is as it was (apart from
the counters of wrong codes, which exist to count refusals). Bodies over 1 MB get 413."""

import hashlib
import json
import os
import secrets
from datetime import datetime

import pytest
from flask import g, session
from flask_wtf.csrf import generate_csrf
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from peewee import SQL, Select, fn
from werkzeug.datastructures import MultiDict

import models
from app import create_app
from models import crypto
from models.clock import FrozenClock
from models.events import (
    CODE_FAILED,
    PASSWORD_RECHECK_FAILED,
    SIGN_IN_PASSWORD_FAILED,
    VERIFICATION_PAUSED,
    SecurityEvent,
)
from models.outbox import OutboxMessage
from models.people import FAMILY, STAFF, Center, Membership, User
from models.recovery import RecoveryCode
from models.sessions import ACTIVE, PENDING, UserSession
from models.verification import EMAIL, SMS, TOTP, PendingSetup, VerificationMethod
from services.methods import recovery_codes
from tests.conftest import PASSWORD, _hash_once

ROLES = ("anonymous", "pending", "family", "staff", "admin")
PAUSED_SUBJECT = "Wrong verification codes were entered for your account"
# Examples per endpoint and role: the whole run stays around a minute on a busy 2-core machine.
# TWOSTEP_FUZZ_EXAMPLES=50 (for instance) searches harder.
EXAMPLES = int(os.environ.get("TWOSTEP_FUZZ_EXAMPLES", "4"))

# Every field name the forms use, plus a few that none does.
FIELDS = [
    "email",
    "password",
    "new_password",
    "password_confirm",
    "confirm",
    "current_password",
    "code",
    "recovery_code",
    "destination",
    "enabled",
    "method_id",
    "next",
    "trust",
    "tab",
    "q",
    "role",
    "csrf_token",
    "id",
]
ODD_VALUES = [
    "",
    " ",
    "0",
    "-1",
    "1",
    "2",
    "3",
    "99999999999999999999999999",
    "1e309",
    "NaN",
    "None",
    "null",
    "true",
    "[]",
    "{}",
    "on",
    "off",
    "\x00",
    "\x00\x01\x1b[31m",
    "123456",
    "12 34 56",
    "ABCD-EFGH-2345",
    "pat@example.com",
    "terry@example.com",
    "+12015550123",
    "//evil.example/",
    "https://evil.example/",
    "javascript:alert(1)",
    "<script>alert(1)</script>",
    "' OR 1=1 --",
    "%00",
    "\u202e\u200b\ufeff",
    "ｐａｔ＠ｅｘａｍｐｌｅ．ｃｏｍ",
    "١٢٣٤٥٦",
    PASSWORD,
]

any_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=300)
values = st.one_of(
    any_text,
    st.sampled_from(ODD_VALUES),
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.booleans().map(str),
    st.builds(
        lambda chunk, times: chunk * times,
        st.sampled_from(["x", "7", "-", " ", "é", "\x00", "ab\u202e"]),
        st.integers(1000, 100_000),
    ),
)
names = st.one_of(st.sampled_from(FIELDS), st.text(max_size=20))
# The usual field names, each there or not, then odd and repeated ones.
bodies = st.builds(
    lambda usual, odd: [*usual.items(), *odd],
    st.fixed_dictionaries({}, optional={name: values for name in FIELDS}),
    st.lists(st.tuples(names, values), max_size=4),
)
path_values = st.one_of(
    st.sampled_from(["1", "2", "3", "0", "-1", "999999999999999999999", "authenticator"]),
    st.sampled_from(["email", "text-message", "x", "%00", "..", "١"]),
    st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=30),
)
shapes = st.sampled_from(["form", "form", "form", "htmx", "json"])


@pytest.fixture(scope="module")
def world(tmp_path_factory, postgres_url):
    """One app and its people for the whole module (building one per example is too slow)."""
    clock = FrozenClock(datetime(2026, 11, 26, 12, 0, 5))
    url = postgres_url or f"sqlite:///{tmp_path_factory.mktemp('fuzz') / 'fuzz.db'}"
    app = create_app(
        {
            "TESTING": True,
            "SECRET_KEY": "fuzz-secret-key-not-for-production",
            "DATABASE_URL": url,
            "CLOCK": clock,
            "RATELIMIT_ENABLED": False,
            "RATELIMIT_STORAGE_URI": "memory://",
            "SENDGRID_API_KEY": "",
            "VONAGE_API_KEY": "",
            "LOG_REQUESTS": False,
            "PURGE_EVERY_SECONDS": 0,
            "CODE_RESEND_COOLDOWN": 0,
            "CODE_SENDS_PER_HOUR_PER_ACCOUNT": 100_000,
            "CODE_SENDS_PER_HOUR_PER_DESTINATION": 100_000,
            # Generated passwords are all wrong: the re-check's limit is tested in test_auth.
            "PASSWORD_RECHECKS_PER_ACCOUNT": 100_000,
        }
    )
    with app.app_context():
        models.db.connect(reuse_if_open=True)
        if postgres_url:
            models.db.drop_tables(models.all_models(), safe=True, cascade=True)
        models.create_tables()
        people = _people()
        models.db.close()
    return app, people


def _person(email, roles, center, *, admin=False, two_step=True):
    user = User.create(
        email=email,
        name=email.split("@")[0].title(),
        password_hash=_hash_once(),
        two_step_enabled=two_step,
    )
    for role in roles:
        Membership.create(user=user, center=center, role=role, is_admin=admin and role == STAFF)
    return user


def _people() -> dict:
    center = Center.create(name="Sunshine Early Learning")
    family = _person("pat@example.com", [FAMILY], center)
    VerificationMethod.create(user=family, kind=EMAIL, destination=family.email)
    VerificationMethod.create(user=family, kind=SMS, destination="+12015550123")
    recovery_codes.generate(family)
    pending = _person("wes@example.com", [FAMILY], center)
    VerificationMethod.create(user=pending, kind=EMAIL, destination=pending.email)
    VerificationMethod.create(
        user=pending, kind=TOTP, secret=crypto.encrypt("JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP")
    )
    recovery_codes.generate(pending)
    staff = _person("terry@example.com", [STAFF, FAMILY], center)
    VerificationMethod.create(user=staff, kind=SMS, destination="+12015550188")
    admin = _person("ada@example.com", [STAFF], center, admin=True)
    VerificationMethod.create(user=admin, kind=EMAIL, destination=admin.email)
    _person("blair@example.com", [STAFF], center, two_step=False)
    return {"pending": pending, "family": family, "staff": staff, "admin": admin}


def _form_rules(app):
    return sorted(
        (rule for rule in app.url_map.iter_rules() if "POST" in rule.methods),
        key=lambda rule: rule.rule,
    )


def _endpoints():
    app = create_app({"TESTING": True, "SECRET_KEY": "x", "DATABASE_URL": "sqlite://"})
    return [rule.endpoint for rule in _form_rules(app)]


ENDPOINTS = _endpoints()


def test_there_are_forms_to_fuzz():
    assert len(ENDPOINTS) >= 15
    assert {"auth.login", "profile.toggle", "challenge.submit"} <= set(ENDPOINTS)


# --- one browser per role, reset before each example ---------------------------------------


class Visitor:
    """A test client signed in as `role` with a known CSRF token, put back before each example
    (a generated request may sign it out, or start another session)."""

    def __init__(self, app, people, role):
        self.user = people.get(role)
        self.client = app.test_client()
        token = secrets.token_urlsafe(16)
        self.token_hash = hashlib.sha256(token.encode()).hexdigest()
        self.state = PENDING if role == "pending" else ACTIVE
        with app.test_request_context():
            g.pop("csrf_token", None)  # not one cached by an earlier request of this context
            self.csrf_token = generate_csrf()  # also puts the raw token in this session
            raw_token = session["csrf_token"]
        with self.client.session_transaction() as cookie_session:
            cookie_session["csrf_token"] = raw_token
            if self.user is not None:
                cookie_session["sid"] = token
        self.cookie = self.client.get_cookie(app.config["SESSION_COOKIE_NAME"]).value
        self.cookie_name = app.config["SESSION_COOKIE_NAME"]

    def reset(self):
        self.client.set_cookie(self.cookie_name, self.cookie)
        with models.db.atomic():
            if self.user is not None and not UserSession.get_or_none(
                UserSession.token_hash == self.token_hash
            ):
                UserSession.create(token_hash=self.token_hash, user=self.user, state=self.state)
            # Wrong codes are meant to count; each example starts from a clean count.
            User.update(failed_code_count=0, verification_paused_until=None).where(
                (User.failed_code_count != 0) | User.verification_paused_until.is_null(False)
            ).execute()
            PendingSetup.update(failed_attempts=0).where(
                PendingSetup.failed_attempts != 0
            ).execute()


def snapshot() -> tuple:
    """Row counts of every table and the people's rows, minus the counters of wrong codes and
    wrong passwords (a refusal is counted on purpose: the pause and the re-check's limit
    depend on it)."""
    counts = []
    for model in models.all_models():
        query = model.select(fn.COUNT(SQL("*")))
        if model is SecurityEvent:
            counted = [
                CODE_FAILED,
                VERIFICATION_PAUSED,
                PASSWORD_RECHECK_FAILED,
                SIGN_IN_PASSWORD_FAILED,
            ]
            query = query.where(SecurityEvent.kind.not_in(counted))
        if model is OutboxMessage:
            query = query.where(OutboxMessage.subject != PAUSED_SUBJECT)
        counts.append(query)
    row = models.db.execute(Select(columns=counts)).fetchone()
    people = User.select(
        User.id, User.email, User.name, User.password_hash, User.two_step_enabled
    ).order_by(User.id)
    methods = VerificationMethod.select(
        VerificationMethod.id, VerificationMethod.user, VerificationMethod.destination
    ).order_by(VerificationMethod.id)
    codes_left = (
        RecoveryCode.select(RecoveryCode.user, fn.COUNT(RecoveryCode.id))
        .where(RecoveryCode.used_at.is_null())
        .group_by(RecoveryCode.user)
        .order_by(RecoveryCode.user)
    )
    return tuple(row), list(people.tuples()), list(methods.tuples()), list(codes_left.tuples())


def _url(app, endpoint, arguments: dict) -> str:
    adapter = app.url_map.bind("localhost")
    try:
        return adapter.build(endpoint, arguments, method="POST")
    except Exception:  # a converter that refuses the value: use a plain one
        return adapter.build(endpoint, {name: 1 for name in arguments}, method="POST")


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_generated_input_never_breaks_a_form(world, endpoint, role):
    app, people = world
    rule = next(rule for rule in app.url_map.iter_rules() if rule.endpoint == endpoint)
    arguments = sorted(rule.arguments)

    with app.app_context():
        models.db.connect(reuse_if_open=True)
        visitor = Visitor(app, people, role)

        every_field = {name: "x" for name in arguments}

        @example(
            body=[(name, "pat\x00@example.com") for name in FIELDS], path=every_field, shape="form"
        )
        @example(
            body=[(name, "١٢٣٤٥٦ \u202eｐâｔ\u200b") for name in FIELDS],
            path=every_field,
            shape="htmx",
        )
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        )
        @given(
            body=bodies,
            path=st.fixed_dictionaries({name: path_values for name in arguments}),
            shape=shapes,
        )
        def post_generated(body, path, shape):
            visitor.reset()
            url = _url(app, endpoint, path)
            before = snapshot()
            headers = {}
            if shape == "json":
                payload = json.dumps(dict(body))
                response = visitor.client.post(
                    url,
                    data=payload,
                    content_type="application/json",
                    headers={"X-CSRFToken": visitor.csrf_token},
                )
            else:
                if shape == "htmx":
                    headers = {"HX-Request": "true", "X-CSRFToken": visitor.csrf_token}
                form = MultiDict(
                    [("csrf_token", visitor.csrf_token), *body]
                )  # ours first: it counts
                response = visitor.client.post(url, data=form, headers=headers)
            assert response.status_code < 500, (url, body, response.get_data(as_text=True)[:500])
            if 400 <= response.status_code < 500:
                assert snapshot() == before, (url, body, response.status_code)

        try:
            post_generated()
        finally:
            if not models.db.is_closed():
                models.db.close()


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_bodies_over_one_megabyte_get_413(world, endpoint):
    app, _people = world
    rule = next(rule for rule in app.url_map.iter_rules() if rule.endpoint == endpoint)
    url = _url(app, endpoint, {name: "1" for name in rule.arguments})
    with app.app_context():
        client = app.test_client()
        response = client.post(url, data={"email": "x" * 1_100_000, "csrf_token": "x"})
        assert response.status_code == 413, url
        assert "too large" in response.get_data(as_text=True)
