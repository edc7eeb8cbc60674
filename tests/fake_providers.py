"""Local stand-ins for SendGrid and Vonage: small HTTP and HTTPS servers on 127.0.0.1 that
record what the SDKs send and answer the way a test tells them to.

Every server binds 127.0.0.1 on a random port, reads at most MAX_BODY bytes a request, gives
up on a silent client after HANDLER_TIMEOUT seconds, and stops (waking any delayed answer)
when the test ends.
"""

import copy
import ipaddress
import itertools
import json
import secrets
import ssl
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

MAX_BODY = 1024 * 1024
HANDLER_TIMEOUT = 5.0

SENDGRID_ACCEPTED = 202

VONAGE_SENT = {
    "message-count": "1",
    "messages": [
        {
            "to": "12015550123",
            "message-id": "0A0000000123ABCD1",
            "status": "0",
            "remaining-balance": "3.14159265",
            "message-price": "0.03330000",
            "network": "12345",
        }
    ],
}


def sendgrid_message_id() -> str:
    """A new id shaped like SendGrid's X-Message-Id (22 URL-safe characters)."""
    return secrets.token_urlsafe(16)[:22]


_vonage_ids = itertools.count(0x0A0000000123ABCD1)


def vonage_message_id() -> str:
    """A new id shaped like Vonage's message-id (hexadecimal, 17 or 18 characters)."""
    return f"{next(_vonage_ids):X}"


def vonage_refusal(status: str, error_text: str) -> dict:
    """A Vonage SMS answer that refuses the message: HTTP 200 with a non-zero status."""
    return {
        "message-count": "1",
        "messages": [{"status": status, "error-text": error_text}],
    }


@dataclass
class Recorded:
    """One request as the fake provider received it."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self):
        return json.loads(self.body)

    def form(self) -> dict[str, str]:
        """The url-encoded form body, one value a name."""
        fields = parse_qs(self.body.decode(), keep_blank_values=True, strict_parsing=True)
        return {name: values[-1] for name, values in fields.items()}


@dataclass
class Answer:
    """How the fake provider answers: a status and body, after an optional delay, or by
    hanging up without a word."""

    status: int = 200
    body: bytes | dict | list = b""
    delay: float = 0.0
    hang_up: bool = False
    headers: dict[str, str] = field(default_factory=dict)


class FakeProvider:
    """A provider on 127.0.0.1: `requests` lists what arrived; `answer` says what to reply.

    Like the real ones it names each message it takes: a SendGrid 202 carries a new
    X-Message-Id header, and each "message-id" of a Vonage answer is a new one; `message_ids`
    lists them in order.
    """

    def __init__(self, answer: Answer | None = None, tls: ssl.SSLContext | None = None):
        self.answer = answer or Answer()
        self.requests: list[Recorded] = []
        self.message_ids: list[str] = []
        self.stopping = threading.Event()
        self.server = _Server(("127.0.0.1", 0), _handler_for(self))
        self.server.tls = tls
        self.scheme = "https" if tls else "http"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    @property
    def host(self) -> str:
        """host:port, as the Vonage SDK wants its rest_host."""
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """scheme://host:port, as the SendGrid SDK wants its host."""
        return f"{self.scheme}://{self.host}"

    def answer_with(self, status: int = 200, body=b"", **options) -> None:
        self.answer = Answer(status=status, body=body, **options)

    def stop(self) -> None:
        self.stopping.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=HANDLER_TIMEOUT)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    tls: ssl.SSLContext | None = None

    def get_request(self):
        connection, address = super().get_request()
        if self.tls is not None:
            # The handshake happens in the handler's thread (bounded by its timeout), so a
            # slow client never holds up the accepting loop.
            connection = self.tls.wrap_socket(
                connection, server_side=True, do_handshake_on_connect=False
            )
        return connection, address

    def handle_error(self, request, client_address):
        pass  # a refused handshake or a client that gave up is what some tests are about


def _handler_for(provider: FakeProvider):
    class Handler(BaseHTTPRequestHandler):
        timeout = HANDLER_TIMEOUT  # per socket operation: a silent client is dropped

        def setup(self):
            super().setup()
            if isinstance(self.connection, ssl.SSLSocket):
                self.connection.do_handshake()

        def do_POST(self):
            self._record_and_answer()

        def do_GET(self):
            self._record_and_answer()

        def _record_and_answer(self):
            length = min(int(self.headers.get("Content-Length") or 0), MAX_BODY)
            provider.requests.append(
                Recorded(
                    method=self.command,
                    path=self.path,
                    headers={name.lower(): value for name, value in self.headers.items()},
                    body=self.rfile.read(length),
                )
            )
            answer = provider.answer
            if answer.delay:
                provider.stopping.wait(answer.delay)
            if answer.hang_up:
                self.close_connection = True
                return
            body, headers = _with_new_message_ids(provider, answer)
            try:
                self.send_response(answer.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)
            except OSError:
                pass  # the client gave up waiting (the timeout tests)

        def log_message(self, format, *args):
            pass

    return Handler


def _with_new_message_ids(provider: FakeProvider, answer: Answer) -> tuple[bytes, dict]:
    """The answer's body and headers, naming the message as the real provider would."""
    headers = dict(answer.headers)
    body = answer.body
    if answer.status == SENDGRID_ACCEPTED and "X-Message-Id" not in headers:
        headers["X-Message-Id"] = sendgrid_message_id()
        provider.message_ids.append(headers["X-Message-Id"])
    if isinstance(body, dict) and isinstance(body.get("messages"), list):
        body = copy.deepcopy(body)
        for message in body["messages"]:
            if isinstance(message, dict) and "message-id" in message:
                message["message-id"] = vonage_message_id()
                provider.message_ids.append(message["message-id"])
    if isinstance(body, dict | list):
        body = json.dumps(body).encode()
    return body, headers


@dataclass
class Certificate:
    """A throwaway self-signed certificate for 127.0.0.1 and localhost."""

    cert_file: Path
    key_file: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert_file, self.key_file)
        return context


def self_signed_certificate(directory: Path) -> Certificate:
    """Make a key and a one-day self-signed certificate (CN and SAN 127.0.0.1, localhost)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    public_key = key.public_key()
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(public_key), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    cert_file = directory / "fake-provider.pem"
    key_file = directory / "fake-provider.key"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return Certificate(cert_file, key_file)
