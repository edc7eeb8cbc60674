"""models/compiled.py: a hot SELECT written once gives the same rows as peewee writing it each
time, with its slots filled per run (converted by their fields), and still shows in peewee's
query log; a hot UPDATE or INSERT written once changes the same rows and says how many (or the
new id). Runs on SQLite, and on PostgreSQL with TEST_DATABASE_URL."""

import logging
from datetime import timedelta

import pytest
from peewee import JOIN

from models.compiled import CompiledSelect, CompiledWrite
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
    # Later runs read with the plan of the first: the same objects, joins and converters.
    sam = factory.family()
    VerificationMethod.create(user=sam, kind=SMS, destination="+12015550123")
    again = joined.rows(email=sam.email)
    assert [(row.id, row.method.kind, row.method.user_id) for row in again] == [
        (sam.id, SMS, sam.id)
    ]
    assert again[0].created_at == User.get_by_id(sam.id).created_at
    lone = factory.family()
    assert [(row.id, row.method) for row in joined.rows(email=lone.email)] == [(lone.id, None)]
    assert [row.method.kind for row in joined.rows(email=pat.email)] == [EMAIL, SMS]

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


def test_an_update_written_once_changes_the_rows_it_names(factory, clock):
    pat, sam = factory.family(), factory.family()
    stamp = CompiledWrite(
        lambda user, moment, floor: User.update(last_sign_in_at=moment).where(
            (User.id == user) & (User.failed_code_count >= floor)
        ),
        user=User.id,
        moment=User.last_sign_in_at,
        floor=User.failed_code_count,
    )
    first, later = clock() - timedelta(hours=1), clock()
    assert stamp.run(user=pat.id, moment=first, floor=0) == 1
    assert stamp.run(user=sam.id, moment=later, floor=0) == 1
    assert stamp.run(user=sam.id, moment=first, floor=1) == 0  # the condition holds for no row
    assert User.get_by_id(pat.id).last_sign_in_at == first
    assert User.get_by_id(sam.id).last_sign_in_at == later


def test_an_insert_written_once_returns_each_new_id(factory, clock):
    pat = factory.family()
    columns = {
        name: getattr(SecurityEvent, name)
        for name in ("user", "actor", "kind", "method_kind", "detail", "ip", "user_agent")
    }
    insert = CompiledWrite(
        lambda **values: SecurityEvent.insert(**values),
        created_at=SecurityEvent.created_at,
        **columns,
    )
    ids = [
        insert.run(
            user=pat,
            actor=pat,
            kind=SIGNED_IN,
            method_kind=kind,
            detail="",
            ip="192.0.2.1",
            user_agent="test",
            created_at=clock() - timedelta(minutes=minutes),
        )
        for minutes, kind in ((5, EMAIL), (1, SMS))
    ]
    assert len(set(ids)) == 2
    saved = {e.id: e for e in SecurityEvent.select().where(SecurityEvent.user == pat)}
    assert set(saved) == set(ids)
    assert [saved[i].method_kind for i in ids] == [EMAIL, SMS]
    assert saved[ids[0]].created_at == clock() - timedelta(minutes=5)


def test_an_insert_written_once_must_name_every_column(db):
    # created_at left out would be the time the SQL was written, for every later row.
    partial = CompiledWrite(
        lambda user, kind: SecurityEvent.insert(user=user, actor=user, kind=kind),
        user=SecurityEvent.user,
        kind=SecurityEvent.kind,
    )
    with pytest.raises(ValueError, match="created_at"):
        partial.run(user=1, kind=SIGNED_IN)


def test_objects_are_made_straight_from_the_rows(factory, clock):
    from peewee import fn

    pat = factory.family(two_step=True)
    VerificationMethod.create(user=pat, kind=EMAIL, destination="pat@example.com")
    VerificationMethod.create(user=pat, kind=SMS, destination="+12015550123")
    lone = factory.family()

    def build(email):
        return (
            User.select(User, VerificationMethod, fn.LOWER(User.email).alias("lowered"))
            .join(VerificationMethod, JOIN.LEFT_OUTER)
            .where(User.email == email)
            .order_by(VerificationMethod.kind)
        )

    compiled = CompiledSelect(build, email=User.email)
    for _ in range(2):  # the plan worked out on the first run serves the second
        rows = compiled.objects(email=pat.email)
        assert [row[VerificationMethod].kind for row in rows] == [EMAIL, SMS]
        user = rows[0][User]
        read = User.get_by_id(pat.id)
        # Every field as peewee reads it: a datetime, a bool, text, integers.
        assert user.__data__ == read.__data__
        assert user.two_step_enabled is True and user.created_at == read.created_at
        method = rows[1][VerificationMethod]
        assert method.__data__ == VerificationMethod.get_by_id(method.id).__data__
        assert rows[0]["lowered"] == pat.email.lower()
    # An outer join that found nothing gives None, not an empty object.
    assert [row[VerificationMethod] for row in compiled.objects(email=lone.email)] == [None]
    assert compiled.objects(email="nobody@example.com") == []
