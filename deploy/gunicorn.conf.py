"""gunicorn settings for production (README "Production"): `gunicorn -c deploy/gunicorn.conf.py`.

Every value can be changed from the environment without editing this file.
"""

import os

wsgi_app = "app:create_app()"
bind = os.environ.get("BIND", "127.0.0.1:8000")
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
worker_class = "sync"
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
graceful_timeout = 20
keepalive = 5
# Recycle workers now and then so a slow leak never grows without bound.
max_requests = 5000
max_requests_jitter = 500
# The app writes one JSON line per request to stderr itself; no second access log.
accesslog = None
errorlog = "-"
# Each worker builds its own app, so no database connection is shared across a fork.
preload_app = False
# The load balancer's address is trusted for X-Forwarded-* (the app's PROXY_FIX_* decide
# how many hops it believes).
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
# Production mode unless the environment says otherwise (Secure cookies, HSTS, required keys).
raw_env = [f"TWOSTEP_ENV={os.environ.get('TWOSTEP_ENV', 'production')}"]
# No control socket: several instances may share a host (gunicorn 24+; older ones ignore it).
control_socket_disable = True
