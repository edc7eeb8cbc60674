"""Developer tools: the outbox viewer (only while the outbox sends and not in production)."""

from flask import Blueprint

bp = Blueprint("dev", __name__, url_prefix="/dev", cli_group=None)
