"""The home page after signing in."""

from flask import Blueprint, current_app, send_from_directory
from flask_login import current_user, login_required

from blueprints.web import allow_pending, render

bp = Blueprint("home", __name__)


@bp.route("/")
@login_required
def index():
    """ "Welcome, NAME" with the person's centers and roles."""
    return render("home/index.html", memberships=current_user.memberships_with_centers())


@bp.route("/favicon.ico")
@allow_pending
def favicon():
    """The tab icon, where browsers look for it by default (base.html links it too)."""
    return send_from_directory(
        current_app.static_folder, "img/favicon.ico", mimetype="image/vnd.microsoft.icon"
    )
