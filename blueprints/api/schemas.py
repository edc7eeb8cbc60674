"""The API's request and response bodies (pydantic): they validate what comes in and are the
OpenAPI document's schemas. Requests are strict (no extra fields, no "1" for 1)."""

from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel

from models.deliveries import DEFERRED, DELIVERED, FAILED, SENT
from services.methods.deliveries import REASONS

Kind = Literal["totp", "email", "sms", "webauthn"]
# What became of a code sent by email or text message, and why one failed: the values kept in
# models/deliveries.py and services/methods/deliveries.py (the provider reports' table).
DeliveryState = Literal[SENT, DEFERRED, DELIVERED, FAILED]
DeliveryReason = Literal[tuple(REASONS)]
MAX_ID = 2**62


def utc(moment: datetime | None) -> datetime | None:
    """A stored (naive, UTC) time as an aware one, so it serialises with its offset."""
    if moment is None:
        return None
    moment = moment.replace(microsecond=0)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


class Request(BaseModel):
    """A request body: unknown fields and loosely typed values are refused (422)."""

    model_config = ConfigDict(extra="forbid", strict=True)


class Problem(BaseModel):
    """An RFC 9457 problem document; `code` says which problem for programs, `retry_after`
    (seconds) comes with 429, `errors` names the fields a 422 refused."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    code: str | None = None
    retry_after: int | None = None
    errors: dict[str, str] | None = None


# --- sign-in ------------------------------------------------------------------------------


class SignIn(Request):
    email: str = Field(max_length=254)
    password: str = Field(max_length=1024)
    device_name: str = Field(max_length=100, description="Shown under Where you're signed in.")


class PendingRequest(Request):
    pending_token: str = Field(max_length=200)


class ChooseMethod(PendingRequest):
    method_id: int = Field(ge=1, le=MAX_ID)


class VerifyCode(PendingRequest):
    code: str = Field(max_length=64, description="6 digits; spaces and dashes are ignored.")


class RecoveryCode(PendingRequest):
    recovery_code: str = Field(max_length=64)


class SignedIn(BaseModel):
    status: Literal["signed_in"] = "signed_in"
    token: str
    expires_at: datetime = Field(description="Unless used again before then.")


class MethodChoice(BaseModel):
    """A saved method as the sign-in picker shows it (destinations masked)."""

    id: int
    kind: Kind
    label: str
    masked: str


class Delivery(BaseModel):
    """What became of the newest code this sign-in sent by email or text message, as the
    email or text provider reports it (the web's code box shows the same)."""

    state: DeliveryState = Field(
        description="sent: the provider took it, nothing more is known yet; deferred: the "
        "provider is still trying; delivered; failed: it will not arrive (send a new code or "
        "choose another method)."
    )
    reason: DeliveryReason | None = Field(
        description="Why it failed (or is deferred), when the provider said; else null."
    )
    check_again: bool = Field(
        description="Whether to ask again in a few seconds (POST /sign-in/delivery): the state "
        "may still change. False once it can't change any more, or 2 minutes after the send."
    )


class SecondStep(BaseModel):
    status: Literal["second_step"] = "second_step"
    pending_token: str
    methods: list[MethodChoice]
    method: MethodChoice | None = Field(description="The method being challenged, if chosen.")
    sent: bool = Field(
        description="Whether a code went to the chosen method (within the cooldown: the one "
        "sent moments ago, still good); `message` says which."
    )
    message: str = ""
    delivery: Delivery | None = Field(
        description="Email or text message: what became of the newest code this sign-in sent "
        "to `method`; null for the authenticator app, or when no send is recorded yet."
    )


class DeliveryStatus(BaseModel):
    """Where the code of a pending sign-in stands (POST /sign-in/delivery)."""

    method: MethodChoice = Field(description="The email address or phone the code went to.")
    delivery: Delivery | None = Field(
        description="What became of the newest code this sign-in sent there; null when no "
        "send is recorded yet."
    )


class SetUp(BaseModel):
    """A staff login with no method yet: it adds one (the set-up endpoints) to sign in."""

    status: Literal["set_up"] = "set_up"
    pending_token: str
    kinds: list[Kind]


class SignInAnswer(RootModel[SignedIn | SecondStep | SetUp]):
    """What a right password leads to, told apart by `status`."""

    root: SignedIn | SecondStep | SetUp = Field(discriminator="status")


# --- the 2-Step Verification window --------------------------------------------------------


class Method(MethodChoice):
    """A saved method as the 2-Step Verification window shows it: the picker's fields, and
    when it was added and last used."""

    added_at: datetime
    last_used_at: datetime | None


class TwoStep(BaseModel):
    enabled: bool
    required: bool = Field(description="Staff: 2-Step Verification cannot be turned off.")
    methods: list[Method]
    recovery_codes_left: int = Field(
        description="Unused recovery codes (0: none made yet, or all used: make a new set)."
    )


class RecoveryCodes(BaseModel):
    codes: list[str] = Field(
        description="The new set, shown this once: each signs in once in place of a code. "
        "Every earlier code stopped working."
    )


class TwoStepChange(Request):
    enabled: bool


class AddMethod(Request):
    kind: Literal["totp", "email", "sms"]
    destination: str | None = Field(
        default=None,
        max_length=254,
        description="Email or sms: where the code goes (email: the login email if left out).",
    )


class PendingAuthenticator(BaseModel):
    id: int
    key: str = Field(description="The key, for manual entry in the authenticator app.")
    otpauth_uri: str


class PendingCode(BaseModel):
    id: int
    masked: str


class AuthenticatorStarted(BaseModel):
    pending: PendingAuthenticator


class CodeSent(BaseModel):
    pending: PendingCode
    message: str = ""


class ConfirmMethod(Request):
    pending_id: int = Field(ge=1, le=MAX_ID)
    code: str = Field(max_length=64)


class MethodSaved(BaseModel):
    method: Method
    enabled: bool = Field(description="The first method saved turns 2-Step Verification on.")


class Reauth(Request):
    password: str = Field(max_length=1024)


class Reauthenticated(BaseModel):
    valid_until: datetime = Field(description="Changes are allowed until then.")


class SetUpMethod(AddMethod, PendingRequest):
    """A staff login's first method, added at sign-in (as in the window)."""


class SetUpConfirm(ConfirmMethod, PendingRequest):
    """The code that saves a staff login's first method and ends the sign-in."""
