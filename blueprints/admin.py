"""The admin pages: People, a person's page with Reset, security activity, 2SV adoption, and
the `flask reset-2sv` command that does what the Reset button does.

Only admins get in (403 for everyone else). A person outside the admin's centers answers 404,
exactly like a person who does not exist.
"""

import csv
import io

import click
from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    get_flashed_messages,
    make_response,
    request,
    url_for,
)
from flask_babel import gettext as _
from flask_babel import ngettext
from flask_login import current_user

from blueprints.web import fail, redirect_to, render, require_recent_auth
from models.clock import now
from models.events import EVENT_LABELS
from models.people import User
from services.admin import directory, reset
from services.language import N_
from services.methods import BY_KIND, deliveries, policy

bp = Blueprint("admin", __name__, url_prefix="/admin", cli_group=None)

FLASH_CATEGORY = "admin"
NOT_AN_ADMIN = N_("Only a center's administrators can open the admin pages.")


@bp.before_request
def only_admins():
    """Anonymous visitors go to sign in; signed-in people who are not admins get 403."""
    if not current_user.is_authenticated:
        abort(401)
    if not current_user.is_admin:
        fail(403, _(NOT_AN_ADMIN))


def _page_size() -> int:
    return int(current_app.config.get("ADMIN_PAGE_SIZE", 20))


def _person_or_404(user_id) -> directory.Person:
    person = directory.find_person(current_user, user_id)
    if person is None:
        abort(404)
    return person


# --- People ---------------------------------------------------------------------------------


@bp.get("/people")
def people():
    """The directory: tabs All, Staff, Families; search by name or email; pages."""
    tab = request.args.get("tab", directory.ALL)
    if tab not in directory.TAB_ROLES:
        tab = directory.ALL
    search = request.args.get("q", "").strip()[:100]
    result = directory.people(
        current_user,
        tab=tab,
        search=search,
        page=directory.parse_page(request.args.get("page")),
        size=_page_size(),
    )
    adoption = None if request.htmx else directory.adoption(current_user)
    return render(
        "admin/people.html",
        block="people",
        tabs=directory.TABS,
        tab=tab,
        search=search,
        result=result,
        adoption=adoption,
        centers=directory.admin_centers(current_user),
    )


def _person_page(person: directory.Person, *, confirming=False, notice="", refresh_events=False):
    """The person's page; HTMX gets only its 2-Step Verification section (and, after a
    reset, the recent activity swapped out of band)."""
    methods = policy.methods_of(person.user)
    return render(
        "admin/person.html",
        block="two_step",
        person=person,
        methods=methods,
        # "I didn't get my code": each method's last delivery, as its provider reported it.
        last_deliveries=deliveries.last_by_destination(person.user, methods),
        method_kinds=BY_KIND,
        decision=reset.can_reset(person.user, current_user),
        confirming=confirming,
        refresh_events=refresh_events,
        notice=notice or " ".join(get_flashed_messages(category_filter=[FLASH_CATEGORY])),
        events=directory.activity(current_user, person=person.user, size=10).items,
    )


@bp.get("/people/<int:user_id>")
def person(user_id: int):
    """One page per login: its roles in the admin's centers and its 2-Step Verification."""
    return _person_page(_person_or_404(user_id))


@bp.get("/people/<int:user_id>/reset")
@require_recent_auth
def confirm_reset(user_id: int):
    """Ask before resetting: names the person and says what will happen. Changes nothing."""
    person = _person_or_404(user_id)
    decision = reset.can_reset(person.user, current_user)
    if not decision:
        fail(403, decision.reason)
    return _person_page(person, confirming=True)


@bp.post("/people/<int:user_id>/reset")
@require_recent_auth
def reset_two_step(user_id: int):
    """Reset the person's 2-Step Verification (see services.admin.reset)."""
    person = _person_or_404(user_id)
    try:
        outcome = reset.reset_two_step(person.user, current_user)
    except reset.ResetNotAllowed as refused:
        fail(403, str(refused))
    message = _reset_message(person, outcome)
    if request.htmx:
        return _person_page(
            directory.find_person(current_user, user_id), notice=message, refresh_events=True
        )
    flash(message, FLASH_CATEGORY)
    return redirect_to(url_for("admin.person", user_id=user_id))


def _reset_message(person: directory.Person, outcome: reset.ResetOutcome) -> str:
    name = person.user.name
    removed = outcome.methods_removed
    text = ngettext(
        "%(name)s's 2-Step Verification was reset: %(num)d method removed and signed out "
        "everywhere. We emailed %(name)s.",
        "%(name)s's 2-Step Verification was reset: %(num)d methods removed and signed out "
        "everywhere. We emailed %(name)s.",
        removed,
        name=name,
    )
    if person.is_staff:
        text += " " + _(
            "%(name)s will set up 2-Step Verification again at the next sign-in.", name=name
        )
    return text


# --- Security activity ----------------------------------------------------------------------


def _activity_filters() -> dict:
    """The person and kind filters of the activity page; a person outside the admin's
    centers (or a tampered id) is 404, an unknown kind 400."""
    filters = {"person": None, "kind": ""}
    raw_person = request.args.get("person", "")
    if raw_person:
        filters["person"] = _person_or_404(raw_person).user
    kind = request.args.get("kind", "")
    if kind:
        if kind not in EVENT_LABELS:
            fail(400, _("That is not a kind of event the security log records."))
        filters["kind"] = kind
    return filters


@bp.get("/activity")
def activity():
    """The security log of the admin's people, newest first, filterable, with CSV export."""
    filters = _activity_filters()
    result = directory.activity(
        current_user,
        page=directory.parse_page(request.args.get("page")),
        size=_page_size(),
        **filters,
    )
    return render(
        "admin/activity.html",
        block="activity",
        result=result,
        person=filters["person"],
        kind=filters["kind"],
        choices=directory.people_choices(current_user),
        kinds=directory.event_kinds(),
        method_kinds=BY_KIND,
    )


# Spreadsheets run cells that start like a formula; a leading apostrophe keeps them text.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


@bp.get("/activity.csv")
def activity_csv():
    """The filtered security log as a CSV attachment (never a code: the log holds none)."""
    filters = _activity_filters()
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["time", "person", "email", "event", "method", "actor", "ip"])
    for event in directory.activity_export(current_user, **filters):
        method = BY_KIND.get(event.method_kind)
        actor = event.actor if event.actor_id else None
        writer.writerow(
            [
                _cell(event.created_at.strftime("%Y-%m-%d %H:%M:%S") + " UTC"),
                _cell(event.user.name),
                _cell(event.user.email),
                _cell(event.label),
                _cell(method.label if method else event.method_kind),
                _cell(actor.email if actor else ""),
                _cell(event.ip),
            ]
        )
    response = make_response(out.getvalue())
    response.mimetype = "text/csv"
    filename = f"security-activity-{now():%Y-%m-%d}.csv"
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


# --- Adoption -------------------------------------------------------------------------------


@bp.get("/adoption")
def adoption():
    """For each of the admin's centers: families with 2SV on, staff set up, and who is not."""
    return render("admin/adoption.html", adoption=directory.adoption(current_user))


# --- Command line ---------------------------------------------------------------------------


@bp.cli.command("reset-2sv")
@click.argument("email")
@click.option("--by", "admin_email", required=True, help="The email of the admin responsible.")
@click.option("--yes", is_flag=True, help="Reset without asking for confirmation.")
def reset_2sv_command(email, admin_email, yes):
    """Reset EMAIL's 2-Step Verification on behalf of an admin of one of their centers."""
    person = User.by_email(email)
    if person is None:
        raise click.ClickException(f"No login has the email {email}.")
    admin = User.by_email(admin_email)
    if admin is None or not admin.is_admin:
        raise click.ClickException(f"{admin_email} is not an admin of any center.")
    decision = reset.can_reset(person, admin)
    if not decision:
        raise click.ClickException(decision.reason)
    if not yes:
        click.confirm(
            f"Remove every verification method of {person.name} <{person.email}>, turn "
            "2-Step Verification off and sign them out everywhere?",
            abort=True,
        )
    outcome = reset.reset_two_step(person, admin)
    click.echo(
        f"Reset 2-Step Verification for {person.email} (by {admin.email}): "
        f"{outcome.methods_removed} method(s) removed, {outcome.sessions_ended} session(s) "
        "ended. The person has been emailed."
    )
