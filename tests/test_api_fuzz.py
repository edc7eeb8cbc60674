"""schemathesis over every operation of the mobile API, from its own OpenAPI document: with a
signed-in parent's token, and a real pending sign-in's token in place of any generated
`pending_token`. No answer may be a 5xx, and every answer must be what the document says
(status, content type, headers, body); bodies the document forbids must be refused (4xx).

TWOSTEP_FUZZ_EXAMPLES raises the number of generated requests per operation (default 20).
"""

import os

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode, checks

from models import crypto
from models.verification import TOTP, VerificationMethod
from services.methods import totp
from tests.api_client import app_token

EXAMPLES = int(os.environ.get("TWOSTEP_FUZZ_EXAMPLES", "20"))

CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_headers_conformance,
    checks.response_schema_conformance,
    checks.negative_data_rejection,
]


@pytest.fixture
def app_config():
    # Limits would answer most generated requests with 429 (documented, but shallow).
    return {"RATELIMIT_ENABLED": False}


@pytest.fixture
def tokens(app, factory):
    """A signed-in parent (2SV on, an authenticator saved) and a pending sign-in of another."""
    parent = factory.family(email="pat@example.com", two_step=True)
    VerificationMethod.create(
        user=parent, kind=TOTP, secret=crypto.encrypt(totp.new_secret()), last_totp_step=0
    )
    waiting = factory.family(email="riley@example.com", two_step=True)
    VerificationMethod.create(user=waiting, kind="email", destination="riley@example.com")
    pending = app_token(waiting, "Riley's phone", pending=True)
    return {"token": app_token(parent), "pending": pending}


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_every_operation_answers_as_documented(app, tokens, mode):
    # schemathesis's lazy pytest fixture loader does not run under pytest 9, so each operation
    # is driven through its hypothesis strategy here.
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert operations and len(operations) == _operation_count(schema)
    headers = {"Authorization": f"Bearer {tokens['token']}"}
    for operation in operations:

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def answers_as_documented(case):
            positive = mode is GenerationMode.POSITIVE
            if positive and isinstance(case.body, dict) and "pending_token" in case.body:
                case.body["pending_token"] = tokens["pending"]
            case.call_and_validate(headers=headers, checks=CHECKS)

        answers_as_documented()


def _operation_count(schema) -> int:
    return sum(len(operations) for operations in schema.raw_schema["paths"].values())
