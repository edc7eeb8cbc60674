"""Flask extensions, created once and bound to the app in `create_app()`."""

from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_wtf.csrf import CSRFProtect
from htmx_flask import Htmx

csrf = CSRFProtect()
login_manager = LoginManager()
htmx = Htmx()
# Storage comes from RATELIMIT_STORAGE_URI (memory:// by default, redis://... in production).
limiter = Limiter(key_func=get_remote_address, strategy="moving-window")
