"""The method registry: what the authenticator app, email, text message and security keys
have in common.

The picker, the tabs, the window and the admin pages loop over `KINDS` instead of `if` chains.
"""

from dataclasses import dataclass

from models.verification import EMAIL, SMS, TOTP, WEBAUTHN, VerificationMethod
from services.language import N_, gettext

BULLETS = "\u2022\u2022\u2022"


def mask_email(address: str) -> str:
    """`p•••@example.com`: first character, three bullets, the full domain (SPEC Decisions 9)."""
    local, _, domain = (address or "").partition("@")
    return f"{local[:1]}{BULLETS}@{domain}"


def mask_phone(e164: str) -> str:
    """`•••-•••-0123`: only the last four digits show (SPEC Decisions 9)."""
    digits = "".join(ch for ch in (e164 or "") if ch.isdigit())
    return f"{BULLETS}-{BULLETS}-{digits[-4:]}"


@dataclass(frozen=True)
class MethodKind:
    """One kind of verification method and how the screens talk about it."""

    kind: str
    english_label: str  # the tab name, also the start of the picker's button name
    slug: str  # in URLs: /profile/2sv/methods/<slug>
    sends_code: bool  # email and text message send codes; the app makes its own
    channel: str = ""  # the OneTimeCode channel for kinds that send codes
    several: bool = False  # security keys: a person may add several (each has a name)

    @property
    def label(self) -> str:
        """The tab name in the current language (`english_label` in the catalogue)."""
        return gettext(self.english_label)

    def masked(self, destination: str) -> str:
        """The destination as shown on screen, never in full (a security key: its name)."""
        if self.kind == EMAIL:
            return mask_email(destination)
        if self.kind == SMS:
            return mask_phone(destination)
        if self.kind == WEBAUTHN:
            return destination
        return ""

    def describe(self, method: VerificationMethod) -> str:
        """`Email p•••@example.com`, `Authenticator App`: how a saved method is named."""
        masked = self.masked(method.destination)
        return f"{self.label} {masked}" if masked else self.label


AUTHENTICATOR = MethodKind(TOTP, N_("Authenticator App"), "authenticator", sends_code=False)
EMAIL_KIND = MethodKind(EMAIL, N_("Email"), "email", sends_code=True, channel="email")
SMS_KIND = MethodKind(SMS, N_("Text Message"), "text-message", sends_code=True, channel="sms")
SECURITY_KEY = MethodKind(
    WEBAUTHN, N_("Security Key"), "security-key", sends_code=False, several=True
)

KINDS = (AUTHENTICATOR, EMAIL_KIND, SMS_KIND, SECURITY_KEY)
KIND_ORDER = [k.kind for k in KINDS]
BY_KIND = {k.kind: k for k in KINDS}
BY_SLUG = {k.slug: k for k in KINDS}


def kind_of(method: VerificationMethod) -> MethodKind:
    """The registry entry of a saved method."""
    return BY_KIND[method.kind]


def ways_in(methods: list[VerificationMethod]) -> list[VerificationMethod]:
    """The picker's entries: each method, but one entry for all of a person's security keys
    (the browser offers whichever of them is at hand)."""
    seen_several = set()
    entries = []
    for method in methods:
        if BY_KIND[method.kind].several:
            if method.kind in seen_several:
                continue
            seen_several.add(method.kind)
        entries.append(method)
    return entries
