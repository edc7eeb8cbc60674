"""models/compiled.py: a hot SELECT written once gives the same rows as peewee writing it each
time, with its slots filled per run (converted by their fields), and still shows in peewee's
query log. Runs on SQLite, and on PostgreSQL with TEST_DATABASE_URL."""

import logging
from datetime import timedelta

import pytest
from peewee import JOIN

from models.compiled import CompiledSelect
from models.events import SIGNED_IN, SecurityEvent
from models.people import User
from models.verification import EMAIL, SMS, VerificationMethod


def test_rows_are_the_ones_peewee_reads(factory, clock):
    pat, sam = factory.family(), factory.family()
    for day in range(5):
        for user in (pat, sam):
            SecurityEvent.create(
                user=user, actor=user, kind=SIGNED_IN, created_at=clock() - timedelta(days=day)
            )

    def build(user, since):
        return (
            SecurityEvent.select()
            .where((SecurityEvent.user == user) & (SecurityEvent.created_at >= since))
            .order_by(SecurityEvent.created_at.desc())
        )

    compiled = CompiledSelect(build, user=SecurityEvent.user, since=SecurityEvent.created_at)
    since = clock() - timedelta(days=2)
    for user in (pat, sam, pat):  # the same statement, other values each time
        got = compiled.rows(user=user, since=since)
        assert [(e.id, e.user_id, e.created_at) for e in got] == [
            (e.id, e.user_id, e.created_at) for e in build(user.id, since)
        ]
        assert len(got) == 3 and all(isinstance(e, SecurityEvent) for e in got)
    assert compiled.first(user=factory.family(), since=since) is None


def test_joined_models_and_tuples(factory):
    pat = factory.family()
    VerificationMethod.create(user=pat, kind=EMAIL, destination="pat@example.com")
    VerificationMethod.create(user=pat, kind=SMS, destination="+12015550123")
    joined = CompiledSelect(
        lambda email: (
            User.select(User, VerificationMethod)
            .join(VerificationMethod, JOIN.LEFT_OUTER, attr="method")
            .where(User.email == email)
            .order_by(VerificationMethod.kind)
        ),
        email=User.email,
    )
    rows = joined.rows(email=pat.email)
    assert [row.method.kind for row in rows] == [EMAIL, SMS]
    assert {row.id for row in rows} == {pat.id}

    counted = CompiledSelect(
        lambda user: (
            VerificationMethod.select(VerificationMethod.kind)
            .where(VerificationMethod.user == user)
            .order_by(VerificationMethod.kind)
            .tuples()
        ),
        user=VerificationMethod.user,
    )
    assert counted.rows(user=pat) == [(EMAIL,), (SMS,)]


def test_each_run_is_in_the_query_log(factory, caplog):
    pat = factory.family()
    compiled = CompiledSelect(lambda user: User.select().where(User.id == user), user=User.id)
    caplog.set_level(logging.DEBUG, logger="peewee")
    caplog.clear()
    compiled.rows(user=pat.id)
    compiled.rows(user=pat.id)
    assert len([r for r in caplog.records if r.name == "peewee"]) == 2


def test_slots_must_match_the_query(db):
    wrong = CompiledSelect(lambda user: User.select(), user=User.id)
    with pytest.raises(ValueError, match="slots"):
        wrong.rows(user=1)
