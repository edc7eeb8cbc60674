"""Flask extensions, created once and bound to the app in `create_app()`."""

from flask import current_app
from flask_babel import Babel
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from htmx_flask import Htmx

from blueprints.csrf_tokens import SignedOnceCSRF

babel = Babel()
csrf = SignedOnceCSRF()
login_manager = LoginManager()
htmx = Htmx()
# Storage comes from RATELIMIT_STORAGE_URI (memory:// by default, redis://... in production).
limiter = Limiter(key_func=get_remote_address, strategy="moving-window")


def from_setting(name: str):
    """A limit string read from the app's settings when the request comes (the limits are
    declared at import time, before any app exists)."""
    return lambda: current_app.config[name]


# Every endpoint that sends a code shares one per-IP budget (the per-account and
# per-destination caps are counted in services.security.throttle).
send_codes_limit = limiter.shared_limit(
    from_setting("SEND_CODES_PER_IP"), scope="send-codes", methods=["POST"]
)
# Every endpoint that checks a code shares one per-IP budget.
code_attempts_limit = limiter.shared_limit(
    from_setting("SIGN_IN_ATTEMPTS_PER_IP"), scope="code-attempts", methods=["POST"]
)
