"""The staff queue, the request page, request creation and the manual-input forms.

Thin doors into ``services.privacy_requests`` and ``services.manual_inputs``: a form validates, one service
call changes state, ``dispatch.commit_and_run()`` commits and only then starts any scheduled run. Identity
values never travel in URLs: searches are POSTed and redirected with a keyed hash instead.

Over 400 lines because it holds the request area's routes (queue, request page, creation, the
request actions); each is a few lines, and the manual-input form has its own module (``manual_input``).
"""

from __future__ import annotations

import re
from datetime import datetime

from flask import abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user
from wtforms import SelectChoice

from portal import routing
from portal.execution import dispatch
from portal.models import (
    DEFAULT_ACCESS_POLICY_KEY,
    AuditEvent,
    PrivacyRequest,
    RequestStatus,
    Role,
    lifecycle,
    utcnow,
)
from portal.requests import bp
from portal.requests.forms import (
    DEFAULT_QUEUE_STATUS,
    QUEUE_STATUSES,
    STATUS_ALL,
    STATUS_LABELS,
    ConfirmForm,
    DenyForm,
    NewRequestForm,
    QueueFilterForm,
)
from portal.security import roles_required
from portal.services import (
    NotFound,
    ValidationFailed,
    dashboard,
    datasets,
    identities,
    manual_inputs,
    policies,
    privacy_requests,
    request_lists,
)
from portal.templating import STATUS_BADGES
from portal.web import current_actor, refusable

S = RequestStatus
EMPTY_QUEUE = {
    "requires_input": "No requests waiting for input",
    "pending": "No requests waiting for approval",
    "error": "No requests in error",
    STATUS_ALL: "No requests yet",
}


def confirmed() -> None:
    """A state-changing POST carries a valid CSRF token (a form with nothing else in it)."""
    if not ConfirmForm().validate_on_submit():
        abort(400, "The form expired or was sent from another site. Go back, reload the page and try again.")


# --- presentation helpers ---------------------------------------------------------------------------


def delivery_card_for(privacy_request: PrivacyRequest, handover=None):
    from portal.requests.delivery import card_for  # the delivery card's module imports this one

    return card_for(privacy_request, handover)


def due_badge(privacy_request: PrivacyRequest, now: datetime) -> tuple[str, str] | None:
    """(colour, text) for the deadline of an open request, counted in UTC calendar days."""
    if privacy_request.status in lifecycle.CLOSED:
        return None
    days = (privacy_request.due_date.date() - now.date()).days
    if days < 0:
        return "danger", f"overdue by {-days} day{'s' if days != -1 else ''}"
    if days == 0:
        return "warning", "due today"
    return ("warning" if days <= 7 else "light"), f"{days} day{'s' if days != 1 else ''} left"


ACTION_WORDS = {
    "request.created": "Request created",
    "request.approved": "Approved",
    "request.denied": "Denied",
    "request.canceled": "Canceled",
    "request.retried": "Retry requested",
    "request.run_started": "Run started",
    "request.requires_input": "Paused: waiting for manual input",
    "request.resumed": "Resumed",
    "request.completed": "Completed: access package built",
    "request.errored": "Run failed",
    "request.identity_revealed": "Identity revealed",
    "manual_input.saved": "Manual data saved",
    "package.viewed": "Access package viewed",
    "package.downloaded": "Access package downloaded",
    "request.purged": "Personal data purged under the retention policy",
    "request.deadline_extended": "Deadline extended",
    "request.subject_told": "Recorded that the subject was told of the extension",
    "task.opened": "Task opened",
    "task.claimed": "Task claimed",
    "task.assigned": "Task assigned",
    "task.released": "Task given back",
    "note.added": "Note added",
    "note.deleted": "Note deleted",
}


def describe_event(event: AuditEvent) -> str:
    """An audit action in words; details hold no personal data, so they may be shown."""
    details = event.details or {}
    if event.action == "manual_input.saved" and details.get("nothing_found"):
        return "Nothing found confirmed"
    if event.action == "manual_input.saved" and details.get("replaced"):
        return "Manual data replaced"
    if event.action in ("task.opened", "task.assigned", "task.claimed") and details.get("assignee"):
        return f"{ACTION_WORDS[event.action]}: {details['assignee']}"
    if event.action == "request.deadline_extended":
        return f"Deadline extended from {details.get('previous_due_date')} to {details.get('new_due_date')}"
    if event.action == "request.requires_input" and details.get("missing"):
        return f"Paused: waiting for manual input ({', '.join(details['missing'])})"
    return ACTION_WORDS.get(event.action, event.action)


def _missing_names(privacy_request: PrivacyRequest) -> list[str]:
    return [
        card.gated.connection.name
        for card in manual_inputs.cards_for(privacy_request)
        if card.state != "done"
    ]


def _outcome(
    prefix: str, privacy_request: PrivacyRequest, dispatched: dispatch.Dispatched
) -> tuple[str, str]:
    """A flash saying where the request ended up: run inline, queued for a worker, or queued for later."""
    if privacy_request.id in dispatched.not_enqueued:
        return f"{prefix}. {dispatch.QUEUED_LATER_MESSAGE}", "warning"
    if dispatched.background and privacy_request.id in dispatched.ids:
        return f"{prefix}: queued — a worker runs it in the background; reload to see its progress.", "info"
    status = privacy_request.status
    if status == S.COMPLETE:
        return f"{prefix}: the request completed at once and its access package is ready.", "success"
    if status == S.REQUIRES_INPUT:
        names = ", ".join(_missing_names(privacy_request))
        return f"{prefix}: the request is waiting for input from {names}.", "info"
    if status == S.PENDING:
        return f"{prefix}: the request is pending approval by an admin.", "info"
    if status == S.ERROR:
        return f"{prefix}, but the run failed: {privacy_request.error_message}", "warning"
    return f"{prefix}: status is now {STATUS_BADGES.get(status, ('', status))[1]}.", "info"


# --- creating a request -----------------------------------------------------------------------------


def _show_create_errors(form: NewRequestForm, exc: ValidationFailed | NotFound) -> None:
    if isinstance(exc, NotFound):
        form.policy.errors = [*form.policy.errors, exc.words]
        return
    location = exc.errors[0][0] if exc.errors else ()
    target = {
        ("identity", "email"): form.email,
        ("identity", "phone_number"): form.phone_number,
        ("external_id",): form.external_id,
    }.get(tuple(location))
    if target is None:
        form.form_errors.append(exc.words)
    else:
        target.errors = [*target.errors, exc.words]


@bp.route("/new", methods=["GET", "POST"])
@roles_required(Role.ADMIN, Role.STAFF)
def new():
    form = NewRequestForm()
    form.policy.choices = [
        SelectChoice(policy.key, f"{policy.name} ({policy.days_to_respond} days)")
        for policy in policies.list_policies()
    ]
    if not form.is_submitted():
        form.policy.data = DEFAULT_ACCESS_POLICY_KEY
    if form.validate_on_submit():
        with refusable() as outcome:
            privacy_request = privacy_requests.create_request(
                identity={"email": form.email.data, "phone_number": form.phone_number.data},
                policy_key=form.policy.data,
                external_id=form.external_id.data,
                actor=current_actor(),
            )
        if outcome.error:
            _show_create_errors(form, outcome.error)
        else:
            request_id = privacy_request.id
            dispatched = dispatch.commit_and_run()
            flash(*_outcome("Request created", privacy_requests.get_request(request_id), dispatched))
            return redirect(url_for(".detail", request_id=request_id))
    return render_template("requests/new.html", form=form)


# --- the queue --------------------------------------------------------------------------------------

IDENTITY_HASH = re.compile(r"[0-9a-f]{64}")  # the only identity a URL may carry: its keyed hash
URL_SEARCH_REFUSED = (
    "Only a request id or external id is searched from the address bar. Search for an email address, a "
    "phone number or anything else with the search box, which keeps them out of addresses and logs."
)


def _search_redirect():
    """POSTed searches become ``?q=`` (request ids), ``?external=`` or ``?identity=`` (keyed hashes): no
    external id, email or phone in the URL."""
    form = QueueFilterForm()
    if not form.validate_on_submit():
        flash("That search could not be understood; the filters were reset.", "warning")
        return redirect(url_for(".queue"))
    params: dict[str, str] = {"status": form.status.data}
    term = (form.search.data or "").strip()
    if term:
        try:
            params.update(identities.classify_search(term))
        except (ValidationFailed, NotFound) as exc:
            # Nothing to find: an empty result that keeps the term in the box (this page, not a URL),
            # never the whole list, which would read like results.
            return _render_queue(
                form.status.data, request_lists.Page([], 0, 1, 1), search=term, unmatched=exc.words
            )
    elif form.identity.data:
        params["identity"] = form.identity.data
    elif form.external.data:
        params["external"] = form.external.data
    return redirect(url_for(".queue", **params))


@bp.route("/", methods=["GET", "POST"])
def queue():
    if request.method == "POST":
        return _search_redirect()
    status = request.args.get("status", DEFAULT_QUEUE_STATUS)
    if status not in STATUS_LABELS:
        status = DEFAULT_QUEUE_STATUS
    q = request.args.get("q", "").strip()[:254] or None
    identity = request.args.get("identity", "").strip() or None
    external = request.args.get("external", "").strip() or None
    usable = {
        "identity": identity if identity is None or IDENTITY_HASH.fullmatch(identity) else None,
        "external": external if external is None or IDENTITY_HASH.fullmatch(external) else None,
        "q": None,
    }
    refused = usable["identity"] != identity or usable["external"] != external
    if q:
        found = identities.url_search_params(q)  # a request id stays; an external id becomes its hash
        refused = refused or not found
        usable.update(found)
    if refused or usable["q"] != q:
        # Typed into the address bar: an identity or a name is neither searched nor shown; whatever it
        # was, it is taken out of the address.
        if refused:
            flash(URL_SEARCH_REFUSED, "warning")
        return redirect(url_for(".queue", status=status, **{k: v for k, v in usable.items() if v}))
    overdue = request.args.get("due") == "overdue"
    page_number = routing.page_number()
    page = request_lists.list_requests(
        statuses=None if status == STATUS_ALL else [status],
        search=q,
        identity_hash=identity,
        external_id_hash=external,
        page=page_number,
        size=current_app.config["PAGE_SIZE"],
        with_progress=True,
        lean=True,
        overdue_before=dashboard.start_of_day(utcnow()) if overdue else None,
    )
    filters = {
        key: value
        for key, value in (
            ("status", status),
            ("q", q),
            ("identity", identity),
            ("external", external),
            ("due", "overdue" if overdue else None),
        )
        if value
    }
    if page_number > page.pages:
        return redirect(url_for(".queue", page=page.pages, **filters))
    return _render_queue(
        status, page, search=q or "", identity=identity, external=external, filters=filters, overdue=overdue
    )


def _render_queue(
    status: str,
    page: request_lists.Page,
    *,
    search: str = "",
    identity: str | None = None,
    external: str | None = None,
    filters: dict | None = None,
    unmatched: str | None = None,
    overdue: bool = False,
):
    """The queue page; ``unmatched``: why a search found nothing (its term kept in ``search``)."""
    return render_template(
        "requests/queue.html",
        statuses=QUEUE_STATUSES,
        search=search,
        identity=identity or "",
        external=external or "",
        page=page,
        done=page.done,
        systems=page.systems,
        status=status,
        status_label=STATUS_LABELS.get(status, status),
        searching=bool(search or identity or external),
        identity_search=bool(identity),
        external_search=bool(external),
        unmatched=unmatched,
        overdue=overdue,
        filters=filters or {"status": status},
        empty_message=EMPTY_QUEUE.get(status, f"No requests with status {STATUS_LABELS.get(status, status)}"),
        now=utcnow(),
        due_badge=due_badge,
        can_create=current_user.role in (Role.ADMIN, Role.STAFF),
    )


# --- the request page -------------------------------------------------------------------------------


# The request page shows the latest events; "Show the whole timeline" (?timeline=all) up to TIMELINE_ALL.
TIMELINE_EVENTS = 20
TIMELINE_ALL = 1_000


def saved_notice(privacy_request: PrivacyRequest, cards: list, missing: list[str]) -> str | None:
    """After a form save (``?saved=<connection key>``): what is stored now for that system, and whether
    every manual system is done. Stated from the stored entry, so a reload or an old link never claims
    more than is true; an unknown key, or a system with no entry, says nothing."""
    key = request.args.get("saved")
    card = next((card for card in cards if card.gated.key == key), None) if key else None
    if card is None or card.entry is None:
        return None
    what = "nothing found in this system" if card.nothing_found else "data entered"
    message = f"Saved “{card.gated.connection.name}”: {what}."
    if not missing and privacy_request.status == S.REQUIRES_INPUT:
        message += " Every manual system is done: you can resume the request now."
    return message


def _render_detail(privacy_request: PrivacyRequest, *, revealed: dict | None = None, handover=None):
    from portal.requests import workflow  # it builds on this module

    cards = manual_inputs.cards_for(privacy_request)
    missing = [card.gated.connection.name for card in cards if card.state != "done"]
    whole = request.args.get("timeline") == "all"
    limit = TIMELINE_ALL if whole else TIMELINE_EVENTS
    events = privacy_requests.request_events(privacy_request.id, limit=limit + 1)  # one more: are there more?
    events = workflow.timeline(privacy_request.id, events, limit + 1)  # with the request's notes
    more = len(events) > limit
    can_enter = current_user.role in (Role.ADMIN, Role.STAFF) and privacy_request.status == S.REQUIRES_INPUT
    is_admin = current_user.role == Role.ADMIN
    response = render_template(
        "requests/detail.html",
        pr=privacy_request,
        cards=cards,
        missing=missing,
        notice=saved_notice(privacy_request, cards, missing),
        events=events[:limit],
        more_events=more and not whole,
        timeline_truncated=more and whole,
        collection_steps=datasets.collection_steps(privacy_request.id),
        describe_event=describe_event,
        revealed=revealed,
        can_enter=can_enter,
        is_admin=is_admin,
        can_see_package=current_user.role in (Role.ADMIN, Role.REVIEWER),
        # Built only where the template shows it: a form signs a CSRF token as it is built.
        deny_form=DenyForm(formdata=None) if is_admin and privacy_request.status == S.PENDING else None,
        now=utcnow(),
        due_badge=due_badge,
        delivery_card=delivery_card_for(privacy_request, handover),
        **workflow.detail_context(privacy_request),
    )
    if revealed is None:
        return response
    return response, 200, {"Cache-Control": "no-store"}  # the identity must not linger in caches


@bp.route("/<request_id>")
def detail(request_id: str):
    return _render_detail(privacy_requests.get_request(request_id))


@bp.route("/<request_id>/reveal", methods=["POST"])
def reveal_identity(request_id: str):
    """Every role that may see the request may reveal its identity; each reveal is audited."""
    privacy_request = privacy_requests.get_request(request_id)
    confirmed()
    with refusable() as outcome:
        identity = privacy_requests.reveal_identity(privacy_request, current_actor())
    if outcome.error:
        flash(outcome.error.words, "error")
        return redirect(url_for(".detail", request_id=request_id))
    dispatch.commit_and_run()
    return _render_detail(privacy_request, revealed=identity)


def _lifecycle_action(request_id: str, action, prefix: str):
    """Run one lifecycle service call; refusals are flashed, the request page is shown again."""
    privacy_request = privacy_requests.get_request(request_id)  # the object the action changes
    with refusable() as outcome:
        action(request_id, current_actor())
    if outcome.error:
        flash(outcome.error.words, "error")
    else:
        dispatched = dispatch.commit_and_run()
        flash(*_outcome(prefix, privacy_request, dispatched))
    return redirect(url_for(".detail", request_id=request_id))


@bp.route("/<request_id>/resume", methods=["POST"])
@roles_required(Role.ADMIN, Role.STAFF)
def resume(request_id: str):
    confirmed()
    return _lifecycle_action(request_id, privacy_requests.resume_request, "Resumed")


@bp.route("/<request_id>/approve", methods=["POST"])
@roles_required(Role.ADMIN)
def approve(request_id: str):
    confirmed()
    return _lifecycle_action(request_id, privacy_requests.approve_request, "Approved")


@bp.route("/<request_id>/deny", methods=["POST"])
@roles_required(Role.ADMIN)
def deny(request_id: str):
    form = DenyForm()
    privacy_requests.get_request(request_id)  # 404 first
    if not form.validate_on_submit():
        for message in form.reason.errors:
            flash(f"Not denied: the reason is too long. {message}", "error")
        return redirect(url_for(".detail", request_id=request_id))
    with refusable() as outcome:
        privacy_requests.deny_request(request_id, form.reason.data, current_actor())
    if outcome.error:
        flash(outcome.error.words, "error")
    else:
        dispatch.commit_and_run()
        flash("Denied: the request will not be processed.", "success")
    return redirect(url_for(".detail", request_id=request_id))


@bp.route("/<request_id>/retry", methods=["POST"])
@roles_required(Role.ADMIN)
def retry(request_id: str):
    confirmed()
    return _lifecycle_action(request_id, privacy_requests.retry_request, "Retried")
