"""The profile page and the 2-Step Verification window."""

from flask import Blueprint
from flask_login import current_user, login_required

from blueprints.web import render
from services import policy

bp = Blueprint("profile", __name__, url_prefix="/profile")


@bp.route("")
@login_required
def show():
    """The person's profile: name, email, centers, and the way to 2-Step Verification."""
    return render(
        "profile/profile.html",
        memberships=current_user.memberships_with_centers(),
        methods=policy.methods_of(current_user),
    )


@bp.route("/2sv")
@login_required
def two_step():
    """The 2-Step Verification window (issue 3 fills this in)."""
    return render("profile/two_step.html", methods=policy.methods_of(current_user))
