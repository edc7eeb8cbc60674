"""A refused request body's `errors` (field path -> message) speak the request's language:
made from pydantic's error type and context, never its English `msg`."""

import pytest

from blueprints.api.field_errors import field_errors, field_message
from tests.api_client import ApiClient, app_token, is_problem

SPANISH = {"Accept-Language": "es"}


@pytest.fixture
def api(app, factory):
    """The mobile app, signed in as a family member."""
    return ApiClient(app.test_client(), app_token(factory.family(email="pat@example.com")))


@pytest.fixture
def anonymous(app, db):
    return ApiClient(app.test_client())


@pytest.mark.parametrize(
    "path, body, field, english, spanish",
    [
        ("/two-step", {}, "enabled", "This field is required.", "Este campo es obligatorio."),
        (
            "/two-step",
            {"enabled": "true"},
            "enabled",
            "This should be true or false.",
            "Debe ser true o false (verdadero o falso).",
        ),
        (
            "/two-step",
            {"enabled": True, "more": 1},
            "more",
            "This field isn't allowed here.",
            "Este campo no está permitido aquí.",
        ),
        (
            "/reauth",
            {"password": "x" * 1025},
            "password",
            "Use at most 1024 characters.",
            "Usa como máximo 1024 caracteres.",
        ),
        (
            "/two-step/methods",
            {"kind": "fax"},
            "kind",
            'Use one of these: "totp", "email", or "sms".',
            'Usa uno de estos: "totp", "email" o "sms".',
        ),
        (
            "/two-step/methods/confirm",
            {"pending_id": "1", "code": "123456"},
            "pending_id",
            "This should be a whole number.",
            "Debe ser un número entero.",
        ),
        (
            "/two-step/methods/confirm",
            {"pending_id": 0, "code": "123456"},
            "pending_id",
            "Use 1 or more.",
            "Usa 1 o más.",
        ),
        ("/reauth", {"password": 12}, "password", "This should be text.", "Debe ser texto."),
        ("/reauth", ["x"], "body", "Send a JSON object.", "Envía un objeto JSON."),
    ],
)
def test_each_field_message_is_in_the_requests_language(api, path, body, field, english, spanish):
    send = api.put if path == "/two-step" else api.post
    for headers, message in (({}, english), (SPANISH, spanish)):
        response = send(path, body, headers=headers)
        assert is_problem(response, 422)
        assert response.get_json()["errors"] == {field: message}


def test_a_sign_in_too_long_in_spanish(anonymous):
    body = {"email": "pat@example.com", "password": "x", "device_name": "x" * 101}
    response = anonymous.post("/sign-in", body, headers=SPANISH)
    assert is_problem(response, 422)
    assert response.get_json()["errors"] == {"device_name": "Usa como máximo 100 caracteres."}
    assert response.get_json()["detail"] == "Faltan algunos campos o no son válidos."


@pytest.mark.parametrize(
    "headers, one, generic",
    [
        ({}, "Use at most 1 character.", "This value isn't valid."),
        (SPANISH, "Usa como máximo 1 carácter.", "Este valor no es válido."),
    ],
)
def test_the_mapping_counts_and_falls_back_to_a_generic_message(app, headers, one, generic):
    with app.test_request_context(headers=headers):
        assert field_message({"type": "string_too_long", "ctx": {"max_length": 1}}) == one
        made_up = {"type": "no_such_type", "msg": "Some English from pydantic", "ctx": {}}
        assert field_message(made_up) == generic
        # A known type whose context lacks what its message needs: generic, not a 500.
        assert field_message({"type": "less_than_equal"}) == generic
        assert field_message({"type": "literal_error", "ctx": {"expected": 5}}) != ""
        errors = [made_up | {"loc": ("a", 0)}, {"type": "missing", "loc": ("a", 0)}]
        assert field_errors(errors) == {"a.0": generic}  # the first error of a field
