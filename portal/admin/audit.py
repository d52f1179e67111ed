"""Admin: the audit log — browse newest first with filters, export the current filter as CSV (S7).

Read-only on purpose: events are append-only, so no route here (or anywhere) edits or deletes them.
"""

from __future__ import annotations

from flask import Response, abort, current_app, render_template, request, stream_with_context, url_for
from werkzeug.routing import BuildError

from portal.admin import bp
from portal.admin.audit_forms import AuditFilterForm
from portal.models import utcnow
from portal.routing import page_number
from portal.services import audit_log


def _filter_form() -> AuditFilterForm:
    return AuditFilterForm(formdata=request.args, actions=audit_log.known_actions())


def _request_url_builder():
    """A function request id → URL of the request page, or None while that page does not exist."""
    if "requests.detail" not in current_app.view_functions:
        return None

    def build(request_id: str) -> str | None:
        try:
            return url_for("requests.detail", request_id=request_id)
        except BuildError:
            return None

    return build


@bp.route("/audit")
def audit():
    form = _filter_form()
    events, filtered = None, True
    if form.validate():
        filters = form.to_filter()
        filtered = filters.active
        events = audit_log.list_events(
            filters,
            page=page_number(),
            per_page=current_app.config["PAGE_SIZE"],
        )
    return render_template(
        "admin/audit/index.html",
        form=form,
        events=events,
        filtered=filtered,
        detail_pairs=audit_log.detail_pairs,
        request_url=_request_url_builder(),
    )


@bp.route("/audit.csv")
def audit_csv():
    form = _filter_form()
    if not form.validate():
        problems = "; ".join(
            f"{form[name].label.text}: {' '.join(errs)}" for name, errs in form.errors.items()
        )
        abort(400, f"The filters are not valid, so nothing was exported. {problems}")
    response = Response(stream_with_context(audit_log.iter_csv(form.to_filter())), mimetype="text/csv")
    filename = f"audit-log-{utcnow().strftime('%Y%m%d-%H%M%S')}.csv"
    response.headers.set("Content-Disposition", "attachment", filename=filename)
    return response
