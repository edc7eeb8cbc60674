"""The home page after signing in."""

from flask import Blueprint
from flask_login import current_user, login_required

from blueprints.web import render

bp = Blueprint("home", __name__)


@bp.route("/")
@login_required
def index():
    """ "Welcome, NAME" with the person's centers and roles."""
    return render("home/index.html", memberships=current_user.memberships_with_centers())
