"""The home page: what each role should look at first."""

from flask import Blueprint, render_template
from flask_login import current_user

from portal.models import RequestStatus, Role, utcnow
from portal.notifications import outbox
from portal.notifications.kinds import KINDS
from portal.requests.views import due_badge
from portal.security import guard_blueprint
from portal.services import dashboard, delivery, request_lists, tasks

bp = Blueprint("dashboard", __name__)
guard_blueprint(bp)


@bp.route("/")
def index():
    """Staff: their queue and what is overdue. Admins: that, plus setup gaps and errors. Reviewers: packages."""
    role = current_user.role
    now = utcnow()
    context = {"user": current_user, "now": now, "due_badge": due_badge}
    if role in (Role.ADMIN, Role.STAFF):
        context.update(queue=dashboard.input_queue(), overdue=dashboard.overdue_count(now))
        context.update(my_tasks=tasks.list_tasks(view="mine", user_id=current_user.id, size=5, now=now))
    if role == Role.ADMIN:
        context.update(
            missing_fields=dashboard.webhooks_missing_fields(),
            errored=dashboard.errored_requests(),
            pending=dashboard.status_count(RequestStatus.PENDING.value),
            mail_failures=outbox.recent_failures(limit=5),
            mail_kinds=KINDS,
            unassigned_tasks=tasks.unassigned_count(),
            workload=tasks.workload(now),
            exact_count_limit=request_lists.EXACT_COUNT_LIMIT,
            behind=tasks.systems_behind(now),
        )
    if role in (Role.ADMIN, Role.REVIEWER):
        review = delivery.review_required()
        packages = dashboard.packages_to_review() if review else dashboard.ready_packages()
        context.update(packages=packages, packages_review=review)
    return render_template("dashboard/index.html", **context)


@bp.route("/api-docs")
def api_docs():
    """The API reference, rendered from the OpenAPI document (no JavaScript, works offline)."""
    from portal.api.openapi import build_document

    return render_template("dashboard/api_docs.html", doc=build_document())
