"""A file sent where a form expects text (say, as the sign-in form's email) is refused with
400 and changes nothing, on every form: no form of TwoStep takes a file."""

import io

import pytest

from models.sessions import UserSession
from tests.conftest import PASSWORD


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/login", "email"),
        ("/login", "password"),
        ("/forgot-password", "email"),
        ("/login/verify", "code"),
    ],
)
def test_a_file_in_place_of_a_text_field_is_refused(browser, factory, path, field):
    factory.family(email="pat@example.com")
    browser.get("/login")
    data = {"email": "pat@example.com", "password": PASSWORD, "code": "123456"}
    data[field] = (io.BytesIO(b"pat@example.com"), "email.txt", "text/plain")
    response = browser.post(path, data, content_type="multipart/form-data")
    assert response.status_code == 400
    assert "takes text, not files" in response.get_data(as_text=True)
    assert UserSession.select().count() == 0


def test_the_same_form_as_plain_multipart_text_still_works(browser, factory):
    factory.family(email="pat@example.com")
    browser.get("/login")
    response = browser.post(
        "/login",
        {"email": "pat@example.com", "password": PASSWORD},
        content_type="multipart/form-data",
    )
    assert response.status_code == 303
