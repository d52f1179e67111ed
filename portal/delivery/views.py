"""The subject's page: ask for a code, enter it, then read the report and download the package.

One neutral page (404) for every link that cannot be used — unknown, expired, revoked, locked — so it
never tells whether a request exists. Proving the address lasts ``DELIVERY_SESSION_MINUTES`` in this
browser's session; a request with no email address (staff handed the link over) needs no code.
"""

from __future__ import annotations

import time

from flask import (
    Response,
    current_app,
    redirect,
    render_template,
    request,
    session,
    stream_with_context,
    url_for,
)

from portal.delivery import bp
from portal.delivery.forms import CodeForm, SendCodeForm
from portal.extensions import db, rate_limited
from portal.models import PackageDelivery, PrivacyRequest, utcnow
from portal.services import attachments, delivery, privacy_requests, reports
from portal.uploads import file_response

SESSION_KEY = "delivery_verified"


def _address_key() -> str:
    return f"delivery:{request.remote_addr}"


def _limited(view):
    return rate_limited(lambda: current_app.config["DELIVERY_RATE_LIMIT"], key_func=_address_key)(view)


@bp.after_request
def _private(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Robots-Tag"] = "noindex, nofollow"
    return response


def _unusable():
    db.session.commit()  # a lock or a count written just now stays
    return render_template("delivery/unavailable.html"), 404


def _verified(delivery_row: PackageDelivery, privacy_request: PrivacyRequest) -> bool:
    if not (privacy_request.identity or {}).get("email"):
        return True  # handed over by staff: there is no address to prove
    proof = session.get(SESSION_KEY)
    return (
        isinstance(proof, dict)
        and proof.get("link") == delivery_row.token_hash
        and isinstance(proof.get("until"), int | float)
        and proof["until"] > time.time()
    )


def _meta(privacy_request: PrivacyRequest, package) -> reports.ReportMeta:
    return reports.ReportMeta(
        request_id=privacy_request.id,
        policy=privacy_request.policy.name,
        completed_at=privacy_request.finished_processing_at,
        generated_at=utcnow(),
        names=privacy_requests.package_names([summary.key for summary in package.keys]),
    )


@bp.route("/<token>")
@_limited
def page(token: str):
    try:
        privacy_request, found = delivery.open_link(token)
    except delivery.LinkUnusable:
        return _unusable()
    if not _verified(found, privacy_request):
        return render_template(
            "delivery/verify.html", token=token, send_form=SendCodeForm(), code_form=CodeForm(), sent=False
        )
    package = privacy_requests.get_package(privacy_request, delivery.SUBJECT, action="delivery.viewed")
    tables = reports.package_tables(package, limit=current_app.config["PACKAGE_PREVIEW_ROWS"])
    meta = _meta(privacy_request, package)
    db.session.commit()
    return render_template(
        "delivery/report.html",
        token=token,
        meta=meta,
        tables=tables,
        display_value=reports.display_value,
        NOTHING_FOUND=reports.NOTHING_FOUND,
        format_time=reports.format_time,
        files=package.attachments,
        file_url=lambda attachment_id: url_for(
            ".download_attachment", token=token, attachment_id=attachment_id
        ),
    )


@bp.post("/<token>/code")
@_limited
def send_code(token: str):
    try:
        delivery.open_link(token)
    except delivery.LinkUnusable:
        return _unusable()
    if not SendCodeForm().validate_on_submit():
        return redirect(url_for(".page", token=token))
    try:
        delivery.send_code(token)
    except delivery.LinkUnusable:
        return _unusable()
    db.session.commit()
    return render_template(
        "delivery/verify.html", token=token, send_form=SendCodeForm(), code_form=CodeForm(), sent=True
    )


@bp.post("/<token>/verify")
@_limited
def verify(token: str):
    try:
        delivery.open_link(token)
    except delivery.LinkUnusable:
        return _unusable()
    form = CodeForm()
    if not form.validate_on_submit():
        return render_template(
            "delivery/verify.html", token=token, send_form=SendCodeForm(), code_form=form, sent=True
        ), 400
    try:
        found = delivery.verify_code(token, form.code.data)
    except delivery.LinkUnusable:
        return _unusable()
    except delivery.WrongCode as exc:
        db.session.commit()  # the wrong try counts
        form.code.errors = [str(exc)]
        return render_template(
            "delivery/verify.html", token=token, send_form=SendCodeForm(), code_form=form, sent=True
        ), 400
    minutes = current_app.config["DELIVERY_SESSION_MINUTES"]
    session[SESSION_KEY] = {"link": found.token_hash, "until": time.time() + 60 * minutes}
    db.session.commit()
    return redirect(url_for(".page", token=token))


def _download(token: str, extension: str):
    try:
        privacy_request, found = delivery.open_link(token)
    except delivery.LinkUnusable:
        return _unusable()
    if not _verified(found, privacy_request):
        return redirect(url_for(".page", token=token))
    package = privacy_requests.get_package(
        privacy_request, delivery.SUBJECT, action="delivery.downloaded", format=extension
    )
    meta = _meta(privacy_request, package)
    if extension == "json":
        body, mimetype = reports.iter_package_json(package), "application/json"
    else:
        body, mimetype = reports.iter_package_zip(package, meta), "application/zip"
    db.session.commit()  # the audit event, before the first byte
    response = Response(stream_with_context(body), mimetype=mimetype)
    response.headers.set(
        "Content-Disposition", "attachment", filename=reports.download_name(privacy_request.id, extension)
    )
    return response


@bp.route("/<token>/package.json")
@_limited
def download_json(token: str):
    return _download(token, "json")


@bp.route("/<token>/package.zip")
@_limited
def download_zip(token: str):
    return _download(token, "zip")


@bp.route("/<token>/attachments/<attachment_id>")
@_limited
def download_attachment(token: str, attachment_id: str):
    """One file of the package, for the subject whose address this browser proved."""
    try:
        privacy_request, found = delivery.open_link(token)
    except delivery.LinkUnusable:
        return _unusable()
    if not _verified(found, privacy_request):
        return redirect(url_for(".page", token=token))
    package = privacy_requests.get_package(privacy_request, delivery.SUBJECT, action=None)
    item, body = attachments.download(privacy_request.id, package, attachment_id, delivery.SUBJECT)
    db.session.commit()  # the audit event, before the first byte
    return file_response(body, item)
