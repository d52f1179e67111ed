"""Final access packages for reviewers and admins: list, view, download as JSON or ZIP.

Viewing and every download go through ``privacy_requests.get_package``, which writes the audit event;
the view commits it — for downloads before the first byte is sent. Downloads are streamed chunk by chunk
from plain values (never lazy-loading from the session). The package page shows the first
``PACKAGE_PREVIEW_ROWS`` rows of each system. Every response of this blueprint carries personal data (or
masks of it), so none may be cached.
"""

from __future__ import annotations

from collections.abc import Iterator

from flask import Response, current_app, render_template, stream_with_context, url_for
from werkzeug.routing import BuildError

from portal.extensions import db
from portal.models import PrivacyRequest, RequestStatus, utcnow
from portal.models.packages import StoredPackage
from portal.packages import bp
from portal.routing import page_number
from portal.services import privacy_requests, reports, request_lists
from portal.web import current_actor


@bp.after_request
def _no_store(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"
    return response


def _package(
    request_id: str, action: str, **details
) -> tuple[PrivacyRequest, StoredPackage, reports.ReportMeta]:
    """The request, its opened package and report metadata, audited (the caller commits); NotFound (the
    404 page, with the service's message) if there is none."""
    privacy_request = privacy_requests.get_request(request_id)
    package = privacy_requests.get_package(privacy_request, current_actor(), action=action, **details)
    return privacy_request, package, _meta(privacy_request)


def _meta(privacy_request: PrivacyRequest) -> reports.ReportMeta:
    return reports.ReportMeta(
        request_id=privacy_request.id,
        policy=privacy_request.policy.name,
        completed_at=privacy_request.finished_processing_at,
        generated_at=utcnow(),
    )


def _streamed_attachment(body: Iterator[bytes], mimetype: str, filename: str) -> Response:
    """Commit (the audit event) first, then stream ``body``."""
    db.session.commit()
    response = Response(stream_with_context(body), mimetype=mimetype)
    response.headers.set("Content-Disposition", "attachment", filename=filename)
    return response


def _request_page_url(request_id: str) -> str | None:
    """The request page, once the requests blueprint has one (it is built separately)."""
    if "requests.detail" not in current_app.view_functions:
        return None
    try:
        return url_for("requests.detail", request_id=request_id)
    except BuildError:
        return None


@bp.route("/")
def index():
    page = request_lists.list_requests(
        statuses=[RequestStatus.COMPLETE.value],
        order="completed",
        page=page_number(),
        size=current_app.config["PAGE_SIZE"],
    )
    return render_template("packages/index.html", page=page)


@bp.route("/<request_id>")
def detail(request_id: str):
    privacy_request, package, _ = _package(request_id, "package.viewed")
    # The rows shown are read before the commit: a chunk that cannot be decrypted leaves no audit event.
    tables = reports.package_tables(package, limit=current_app.config["PACKAGE_PREVIEW_ROWS"])
    db.session.commit()
    return render_template(
        "packages/detail.html",
        pr=privacy_request,
        tables=tables,
        display_value=reports.display_value,
        NOTHING_FOUND=reports.NOTHING_FOUND,
        request_url=_request_page_url(privacy_request.id),
    )


@bp.route("/<request_id>/package.json")
def download_json(request_id: str):
    _, package, meta = _package(request_id, "package.downloaded", format="json")
    return _streamed_attachment(
        reports.iter_package_json(package),
        "application/json",
        reports.download_name(meta.request_id, "json"),
    )


@bp.route("/<request_id>/package.zip")
def download_zip(request_id: str):
    _, package, meta = _package(request_id, "package.downloaded", format="zip")
    return _streamed_attachment(
        reports.iter_package_zip(package, meta),
        "application/zip",
        reports.download_name(meta.request_id, "zip"),
    )
