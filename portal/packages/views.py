"""Final access packages for reviewers and admins: list, view, download as JSON or ZIP.

Viewing and every download go through ``privacy_requests.get_package``, which writes the audit event;
the view commits it — for downloads before the first byte is sent. Downloads are streamed chunk by chunk
from plain values (never lazy-loading from the session). The package page shows the first
``PACKAGE_PREVIEW_ROWS`` rows of each system. Every response of this blueprint carries personal data (or
masks of it), so none may be cached.
"""

from __future__ import annotations

from collections.abc import Iterator

from flask import (
    Response,
    current_app,
    flash,
    redirect,
    render_template,
    stream_with_context,
    url_for,
)
from werkzeug.routing import BuildError

from portal.extensions import db
from portal.models import PrivacyRequest, RequestStatus, utcnow
from portal.models.packages import StoredPackage
from portal.packages import bp
from portal.packages.forms import ApproveForm, LinkForm, SendBackForm
from portal.routing import page_number
from portal.services import attachments, delivery, privacy_requests, reports, request_lists
from portal.uploads import file_response
from portal.web import current_actor, refusable


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
    return privacy_request, package, _meta(privacy_request, package)


def _meta(privacy_request: PrivacyRequest, package: StoredPackage) -> reports.ReportMeta:
    """The exports' metadata, with the systems' and fields' names for the report."""
    keys = [summary.key for summary in package.keys]
    return reports.ReportMeta(
        request_id=privacy_request.id,
        policy=privacy_request.policy.name,
        completed_at=privacy_request.finished_processing_at,
        generated_at=utcnow(),
        names=privacy_requests.package_names(keys),
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
    states = delivery.states_of([pr.id for pr in page.items])
    return render_template("packages/index.html", page=page, delivery_states=states)


@bp.route("/<request_id>")
def detail(request_id: str):
    privacy_request, package, meta = _package(request_id, "package.viewed")
    # The rows shown are read before the commit: a chunk that cannot be decrypted leaves no audit event.
    tables = reports.package_tables(package, limit=current_app.config["PACKAGE_PREVIEW_ROWS"])
    db.session.commit()
    return _render_detail(privacy_request, tables, meta, files=package.attachments)


def _render_detail(
    privacy_request, tables, meta, *, files=(), send_back_form=None, handover=None, status=200
):
    found = delivery.delivery_for(privacy_request.id)
    form = send_back_form or SendBackForm()
    form.systems.choices = [(t.key, meta.names.title(t.key)) for t in tables if t.manual]
    return (
        render_template(
            "packages/detail.html",
            pr=privacy_request,
            files=files,
            file_url=lambda attachment_id: url_for(
                ".download_attachment", request_id=privacy_request.id, attachment_id=attachment_id
            ),
            tables=tables,
            names=meta.names,
            display_value=reports.display_value,
            NOTHING_FOUND=reports.NOTHING_FOUND,
            request_url=_request_page_url(privacy_request.id),
            delivery=found,
            delivery_state=delivery.state_of(privacy_request, found),
            link_status=delivery.link_status(found),
            has_email=bool((privacy_request.identity or {}).get("email")),
            needs_storage_write=delivery.needs_storage_write(privacy_request.id),
            approve_form=ApproveForm(),
            send_back_form=form,
            link_form=LinkForm(),
            handover=handover,
        ),
        status,
    )


def _released_message(release: delivery.Release) -> str:
    if release.emailed:
        return "The data subject has been emailed a link to their data (it works for the next days)."
    return "This request has no email address: hand the link below to the data subject yourself."


@bp.post("/<request_id>/approve")
def approve(request_id: str):
    form = ApproveForm()
    if not form.validate_on_submit():
        return redirect(url_for(".detail", request_id=request_id))
    with refusable() as outcome:
        release = delivery.approve(request_id, current_actor())
    if outcome.error:
        flash(outcome.error.words, "danger")
        return redirect(url_for(".detail", request_id=request_id))
    db.session.commit()  # the approval and the subject's mail stand, whatever the storage does next
    _write_release_copy(request_id)
    return _after_release(request_id, release, "Approved.")


def _write_release_copy(request_id: str) -> None:
    state = delivery.store_release_copy(request_id, current_actor())
    if state == delivery.D.DELIVERY_FAILED:
        flash(
            "The package could not be written to the release storage destination: see below, and retry.",
            "danger",
        )


def _after_release(request_id: str, release: delivery.Release, done: str):
    if release.link is None:
        flash(f"{done} {_released_message(release)}", "success")
        return redirect(url_for(".detail", request_id=request_id))
    # The link is shown once, in this response only: it is never stored.
    privacy_request, package, meta = _package(request_id, "package.viewed")
    tables = reports.package_tables(package, limit=current_app.config["PACKAGE_PREVIEW_ROWS"])
    db.session.commit()
    flash(f"{done} {_released_message(release)}", "success")
    return _render_detail(privacy_request, tables, meta, files=package.attachments, handover=release)


@bp.post("/<request_id>/send-back")
def send_back(request_id: str):
    form = SendBackForm()
    privacy_request = privacy_requests.get_request(request_id)
    state = delivery.state_of(privacy_request, delivery.delivery_for(request_id))
    if state != delivery.D.READY_FOR_REVIEW:
        flash(f"The package of privacy request '{request_id}' is not waiting for review.", "danger")
        return redirect(url_for(".detail", request_id=request_id))
    if privacy_request.package is not None:
        keys = [summary.key for summary in privacy_request.package.contents().keys]
        form.systems.choices = [(key, key) for key in keys if ":" not in key]
    if form.validate_on_submit():
        with refusable() as outcome:
            keys = delivery.send_back(request_id, form.systems.data, form.reason.data, current_actor())
        if not outcome.error:
            db.session.commit()
            flash(
                f"Sent back: the request waits for input again, for {len(keys)} "
                f"system{'' if len(keys) == 1 else 's'}.",
                "success",
            )
            return redirect(_request_page_url(request_id) or url_for(".index"))
        form.systems.errors = (
            [m for loc, m in outcome.error.errors if loc == ("systems",)]
            if hasattr(outcome.error, "errors")
            else [outcome.error.words]
        )
    elif not form.systems.data:
        form.systems.errors = ["Choose at least one system whose entry must be checked again."]
    privacy_request, package, meta = _package(request_id, "package.viewed")
    tables = reports.package_tables(package, limit=current_app.config["PACKAGE_PREVIEW_ROWS"])
    db.session.commit()
    return _render_detail(
        privacy_request, tables, meta, files=package.attachments, send_back_form=form, status=400
    )


@bp.post("/<request_id>/delivery/resend")
def resend_link(request_id: str):
    if not LinkForm().validate_on_submit():
        return redirect(url_for(".detail", request_id=request_id))
    with refusable() as outcome:
        release = delivery.resend_link(request_id, current_actor())
    if outcome.error:
        flash(outcome.error.words, "danger")
        return redirect(url_for(".detail", request_id=request_id))
    db.session.commit()
    return _after_release(request_id, release, "A new link was issued; the old one no longer works.")


@bp.post("/<request_id>/delivery/revoke")
def revoke_link(request_id: str):
    if LinkForm().validate_on_submit():
        with refusable() as outcome:
            delivery.revoke_link(request_id, current_actor())
        if outcome.error:
            flash(outcome.error.words, "danger")
        else:
            db.session.commit()
            flash("The link was revoked: it no longer opens the data.", "success")
    return redirect(url_for(".detail", request_id=request_id))


@bp.post("/<request_id>/delivery/retry")
def retry_storage(request_id: str):
    if LinkForm().validate_on_submit():
        if delivery.needs_storage_write(request_id):
            _write_release_copy(request_id)
            if delivery.delivery_for(request_id).state == delivery.D.DELIVERED:
                flash("The package was written to the release storage destination.", "success")
        else:
            flash("Nothing to retry.", "info")
    return redirect(url_for(".detail", request_id=request_id))


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


@bp.route("/<request_id>/attachments/<attachment_id>")
def download_attachment(request_id: str, attachment_id: str):
    """One file of the package, as a download (never shown inline), audited before the first byte."""
    privacy_request = privacy_requests.get_request(request_id)
    package = privacy_requests.get_package(privacy_request, current_actor(), action=None)
    item, body = attachments.download(request_id, package, attachment_id, current_actor())
    db.session.commit()
    return file_response(body, item)
