"""The second step of signing in: method picker, code box, staff's forced set-up."""

from flask import Blueprint, url_for

from blueprints.web import allow_pending, pending_session, redirect_to, render

bp = Blueprint("challenge", __name__, url_prefix="/login/verify")


@bp.route("", methods=["GET"])
@allow_pending
def verify():
    """The code box (issue 4)."""
    if pending_session() is None:
        return redirect_to(url_for("auth.login"))
    return render("challenge/verify.html")
