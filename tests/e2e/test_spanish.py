"""The flows of a Spanish-speaking family and admin in a real browser, with JavaScript on and
off, finding everything by its Spanish name (SPEC, "Palabras en pantalla"): the "Español" link
on the sign-in page, adding each method, the switch's error, signing in with the picker, and
an admin's reset. Every state is checked with axe and at 360 px and 1280 px (Visitor.check)."""

import pytest

pytest.importorskip("playwright.sync_api")
pytest.importorskip("axe_playwright_python")

from playwright.sync_api import expect  # noqa: E402

from services.methods import mask_email  # noqa: E402
from tests.e2e.live import PASSWORD  # noqa: E402

SWITCH = "Verificación en dos pasos"


def choose_spanish(visitor) -> None:
    """The sign-in page in English, then its "Español" link (a plain link, no script)."""
    page = visitor.goto("/login")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    page.get_by_role("link", name="Español").click()
    expect(page.get_by_role("heading", name="Iniciar sesión")).to_be_visible()
    expect(page.locator("html")).to_have_attribute("lang", "es")
    visitor.check("sign-in page in Spanish")


def sign_in(visitor, email: str) -> None:
    """The Spanish sign-in form: Correo electrónico, Contraseña, Iniciar sesión."""
    page = visitor.goto("/login")
    expect(page.get_by_role("heading", name="Iniciar sesión")).to_be_visible()
    page.get_by_label("Correo electrónico", exact=True).fill(email)
    page.get_by_label("Contraseña", exact=True).fill(PASSWORD)
    visitor.button("Iniciar sesión").click()


def open_window(visitor, name: str) -> None:
    """Profile icon -> Verificación en dos pasos."""
    page = visitor.page
    page.get_by_label(f"Menú del perfil de {name}").click()
    page.get_by_role("navigation", name="Principal").get_by_role("link", name=SWITCH).click()
    expect(page.get_by_role("heading", name=SWITCH, level=1)).to_be_visible()


def saved_methods(page):
    return page.get_by_role("region", name="Tus métodos de verificación").get_by_role("listitem")


def enter_code(visitor, code: str) -> None:
    visitor.page.get_by_label("Código de verificación").fill(code)
    visitor.button("Verificar").click()


def add_by_code(visitor, tab: str, field: str, destination: str, sent_to: str) -> None:
    """Correo electrónico or Mensaje de texto: where the code goes, Enviar código, the code."""
    page = visitor.page
    with visitor.in_place():
        page.get_by_role("tab", name=tab).click()
        expect(page.get_by_role("tab", name=tab)).to_have_attribute("aria-selected", "true")
    page.get_by_label(field, exact=True).fill(destination)
    with visitor.in_place():
        visitor.button("Enviar código").click()
        expect(page.get_by_label("Código de verificación")).to_be_visible()
    visitor.check(f"{tab}: código enviado")
    with visitor.in_place():
        enter_code(visitor, visitor.server.last_code(sent_to))
        expect(saved_methods(page).filter(has_text=tab)).to_be_visible()


def test_a_family_in_spanish_adds_each_method_and_signs_in_with_the_picker(
    visitor, people, live_server
):
    parent = people.family(name="Pat Parent")
    page = visitor.page
    choose_spanish(visitor)
    sign_in(visitor, parent.email)
    expect(page.get_by_role("heading", name="Hola, Pat Parent")).to_be_visible()
    assert people.reload(parent).language == "es"  # the link's choice, kept at sign-in
    open_window(visitor, "Pat Parent")
    visitor.check("la ventana de verificación en dos pasos")

    # The switch with no method: the error in place, nothing changes.
    switch = page.get_by_role("switch", name=SWITCH)
    with visitor.in_place():
        switch.click()
        error = page.get_by_role("alert").filter(has_text="Agrega un método de verificación")
        expect(error).to_be_visible()
    expect(switch).to_have_attribute("aria-checked", "false")
    visitor.check("el error del interruptor")
    assert not people.reload(parent).two_step_enabled

    # The authenticator app.
    expect(page.get_by_role("tab", name="App de autenticación")).to_have_attribute(
        "aria-selected", "true"
    )
    with visitor.in_place():
        visitor.button("Configurar la app de autenticación").click()
        key = page.locator("#setup-key")
        expect(key).to_be_visible()
    expect(page.get_by_role("img", name="Código QR para tu app de autenticación")).to_be_visible()
    visitor.check("app de autenticación: código QR")
    secret = key.inner_text().replace(" ", "")
    with visitor.in_place():
        enter_code(visitor, live_server.totp_code(secret))
        expect(saved_methods(page).filter(has_text="App de autenticación")).to_be_visible()

    # Email and text message.
    add_by_code(
        visitor, "Correo electrónico", "Dirección de correo electrónico", parent.email, parent.email
    )
    typed, e164 = people.phone_number()
    add_by_code(visitor, "Mensaje de texto", "Número de celular", typed, e164)
    (code_text,) = [m.body for m in live_server.messages_to(e164)]
    assert code_text.startswith("Código de verificación de TwoStep: ")

    # On, through the recovery codes shown once.
    switch.click()
    switched_on = page.get_by_role("switch", name=SWITCH, checked=True)
    sheet = page.get_by_role("heading", name="Guarda tus códigos de recuperación")
    expect(sheet.or_(switched_on)).to_be_visible()
    if sheet.is_visible():
        visitor.check("códigos de recuperación")
        visitor.button("Ya guardé mis códigos").click()
    expect(switched_on).to_be_visible()

    page.get_by_label("Menú del perfil de Pat Parent").click()
    page.get_by_role("navigation", name="Principal").get_by_role(
        "button", name="Cerrar sesión"
    ).click()
    expect(page.get_by_role("heading", name="Iniciar sesión")).to_be_visible()

    # Signing in: the picker, by the Spanish names with the masked destinations.
    live_server.clock.advance(seconds=31)
    sign_in(visitor, parent.email)
    expect(page.get_by_role("heading", name="Elige cómo recibir tu código")).to_be_visible()
    expect(visitor.button("App de autenticación")).to_be_visible()
    expect(visitor.button(f"Correo electrónico {mask_email(parent.email)}")).to_be_visible()
    visitor.check("el selector de métodos")
    with visitor.in_place():
        visitor.button(f"Mensaje de texto •••-•••-{e164[-4:]}").click()
        expect(page.get_by_label("Código de verificación")).to_be_visible()
    expect(visitor.button("Enviar un código nuevo")).to_be_visible()
    expect(visitor.button("Probar otro método")).to_be_visible()
    visitor.check("el código por mensaje de texto")
    codes = live_server.wait_for_codes(e164, 2)
    with visitor.full_page():
        enter_code(visitor, codes[-1])
    expect(page.get_by_role("heading", name="Hola, Pat Parent")).to_be_visible()


def test_an_admin_in_spanish_resets_a_staff_member(open_browser, js_enabled, people, live_server):
    admin = people.admin(name="Ada Admin", two_step=True)
    people.add_method(admin, "email", admin.email)
    staff = people.staff(name="Terry Teacher", two_step=True)
    people.add_method(staff, "email", staff.email)

    window = open_browser(js=js_enabled)
    page = window.page
    choose_spanish(window)
    sign_in(window, admin.email)
    expect(page.get_by_label("Código de verificación")).to_be_visible()
    with window.full_page():
        enter_code(window, live_server.last_code(admin.email))
    expect(page.get_by_role("heading", name="Hola, Ada Admin")).to_be_visible()

    page.get_by_role("link", name="Personas", exact=True).first.click()
    expect(page.get_by_role("heading", name="Personas", level=1)).to_be_visible()
    window.check("Personas")
    page.get_by_role("row").filter(has_text=staff.email).get_by_role(
        "link", name="Terry Teacher"
    ).click()
    region = page.get_by_role("region", name=SWITCH)
    with window.in_place():
        region.get_by_role("button", name="Restablecer").click()
        expect(
            page.get_by_role(
                "heading", name="¿Restablecer la verificación en dos pasos de Terry Teacher?"
            )
        ).to_be_visible()
    window.check("restablecer: confirmación")
    with window.in_place():
        page.get_by_role("region", name=SWITCH).get_by_role(
            "button", name="Restablecer", exact=True
        ).click()
        expect(page.get_by_role("status").filter(has_text="Se restableció")).to_be_visible()
    window.check("restablecer: hecho")
    assert people.method_kinds(staff) == set()
    # The staff member never chose a language: the email speaks the admin's request's.
    subjects = [m.subject for m in live_server.messages_to(staff.email)]
    assert "Se restableció tu verificación en dos pasos" in subjects
