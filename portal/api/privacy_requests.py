"""/api/v1/privacy-request: create, list, review, upload, view, resume, package."""

from __future__ import annotations

from collections.abc import Iterator
from itertools import chain

from flask import Response, current_app, g, jsonify, request, stream_with_context

from portal import scopes
from portal.api import bp, requires_scope
from portal.api.schemas import (
    PrivacyRequestListIn,
    PrivacyRequestSearchIn,
    ReviewIn,
    json_body,
    page_json,
    page_params,
    privacy_request_json,
)
from portal.execution import dispatch
from portal.extensions import db
from portal.services import (
    DomainError,
    ValidationFailed,
    execution_log,
    identities,
    manual_inputs,
    nested_policies,
    privacy_requests,
    reports,
    request_lists,
)
from portal.services.attachments import Upload
from portal.uploads import accepts_attachments


def _bodies(summaries: list, *, include_identities: bool = False, verbose: bool = False) -> list[dict]:
    """These requests as the API shows them, their policies with rules in one query, the
    execution logs in two more queries (``verbose``); identities only when asked for, each one audited."""
    results = execution_log.by_dataset([s.id for s in summaries]) if verbose else {}
    if include_identities:
        privacy_requests.identities_listed(summaries, g.api_actor, via="api")
        db.session.commit()
    policies_by_key = nested_policies.with_rules({summary.policy_key for summary in summaries})
    return [
        privacy_request_json(
            summary,
            policy=policies_by_key[summary.policy_key],
            identity=(dict(summary.identity) if include_identities and summary.identity else None),
            results=results.get(summary.id) if verbose else None,
        )
        for summary in summaries
    ]


def _fresh(ids: list[str]) -> list[dict]:
    """These requests as the API shows them, read now (after the commit)."""
    return _bodies(request_lists.summaries(ids))


def _flag(name: str) -> bool:
    """A boolean query parameter as FastAPI reads one (true/True/1/yes/on)."""
    return request.args.get(name, "").strip().lower() in {"true", "1", "yes", "on"}


@bp.post("/privacy-request")
@requires_scope(scopes.PRIVACY_REQUEST_CREATE)
def create_privacy_requests():
    items = PrivacyRequestListIn.validate_python(json_body())
    created, failed = [], []
    for item in items:
        try:
            with db.session.begin_nested():
                pr = privacy_requests.create_request(
                    identity=item.identity.model_dump(),
                    policy_key=item.policy_key,
                    external_id=item.external_id,
                    actor=g.api_actor,
                )
                created.append(pr.id)
        except DomainError as exc:
            # The failed entry echoes what was sent, as fidesops does; it goes only to the caller.
            failed.append({"message": str(exc), "data": item.model_dump()})
    dispatch.commit_and_run()
    return jsonify(succeeded=_fresh(created), failed=failed)


def _page(
    statuses: list[str] | None,
    request_id: str | None,
    identity_hash: str | None,
    page: int,
    size: int,
    *,
    include_identities: bool = False,
    verbose: bool = False,
):
    result = request_lists.list_requests(
        statuses=statuses or None,
        request_id=request_id or None,
        identity_hash=identity_hash,
        page=page,
        size=size,
        order="newest",
        with_identity=include_identities,
    )
    items = _bodies(result.items, include_identities=include_identities, verbose=verbose)
    return jsonify(page_json(items, result.total, page, size))


@bp.get("/privacy-request")
@requires_scope(scopes.PRIVACY_REQUEST_READ)
def list_privacy_requests():
    """``identity`` puts an email or phone number in the URL (and so in access logs and proxies): kept for
    fidesops compatibility; ``POST /privacy-request/search`` takes it in the body."""
    page, size = page_params()
    identity = request.args.get("identity", "").strip()
    identity_hash = identities.identity_hash_for(identity) if identity else None
    return _page(
        request.args.getlist("status"),
        request.args.get("request_id"),
        identity_hash,
        page,
        size,
        include_identities=_flag("include_identities"),
        verbose=_flag("verbose"),
    )


@bp.post("/privacy-request/search")
@requires_scope(scopes.PRIVACY_REQUEST_READ)
def search_privacy_requests():
    """The filters of the GET list in a JSON body, answered as the GET list answers."""
    body = PrivacyRequestSearchIn.model_validate(json_body())
    page, size = page_params()
    identity = body.identity
    identity_hash = (
        identities.identity_search_hash(identity.email, identity.phone_number) if identity else None
    )
    return _page(
        body.status,
        body.request_id,
        identity_hash,
        body.page or page,
        body.size or size,
        include_identities=_flag("include_identities") or bool(body.include_identities),
        verbose=_flag("verbose") or bool(body.verbose),
    )


def _review(approve: bool):
    body = ReviewIn.model_validate(json_body())
    succeeded, failed = [], []
    for request_id in dict.fromkeys(body.request_ids):
        try:
            with db.session.begin_nested():
                if approve:
                    privacy_requests.approve_request(request_id, g.api_actor)
                else:
                    privacy_requests.deny_request(request_id, body.reason, g.api_actor)
                succeeded.append(request_id)
        except DomainError as exc:
            failed.append({"message": str(exc), "data": {"privacy_request_id": request_id}})
    dispatch.commit_and_run()
    return jsonify(succeeded=_fresh(succeeded), failed=failed)


@bp.patch("/privacy-request/administrate/approve")
@requires_scope(scopes.PRIVACY_REQUEST_REVIEW)
def approve_privacy_requests():
    return _review(approve=True)


@bp.patch("/privacy-request/administrate/deny")
@requires_scope(scopes.PRIVACY_REQUEST_REVIEW)
def deny_privacy_requests():
    return _review(approve=False)


@bp.patch("/privacy-request/<request_id>/access_manual_webhook/<key>")
@accepts_attachments
@requires_scope(scopes.PRIVACY_REQUEST_UPLOAD_DATA)
def upload_manual_input(request_id: str, key: str):
    """JSON (fidesops' body), or ``multipart/form-data`` for entries with files: fields as form fields,
    files as parts named after their field's label or pii_field (README, "Attachments")."""
    if request.mimetype == "multipart/form-data":
        system = manual_inputs.manual_system(request_id, key)
        values, uploads = manual_inputs.from_parts(
            system,
            {name: request.form.getlist(name) for name in request.form},
            {
                name: [Upload(part.filename or "", part.stream) for part in request.files.getlist(name)]
                for name in request.files
            },
        )
        fields = manual_inputs.save_manual_input(
            request_id, key, values, g.api_actor, system, uploads=uploads
        )
        db.session.commit()
        return jsonify({"checked": True, "fields": fields})
    body = json_body()
    if not isinstance(body, dict):
        raise ValidationFailed("The body must be an object of label → value.", [((), "must be an object")])
    fields = manual_inputs.save_manual_input(request_id, key, body, g.api_actor)
    db.session.commit()
    return jsonify({"checked": True, "fields": fields})  # written just now, at the current version


@bp.get("/privacy-request/<request_id>/access_manual_webhook/<key>")
@requires_scope(scopes.PRIVACY_REQUEST_VIEW_DATA)
def view_manual_input(request_id: str, key: str):
    view = manual_inputs.view_manual_input(request_id, key)
    return jsonify({"checked": view.checked, "fields": view.fields})


@bp.post("/privacy-request/<request_id>/resume_from_requires_input")
@requires_scope(scopes.PRIVACY_REQUEST_RESUME)
def resume_privacy_request(request_id: str):
    privacy_requests.resume_request(request_id, g.api_actor)
    dispatch.commit_and_run()
    return jsonify(_fresh([request_id])[0])


@bp.get("/privacy-request/<request_id>/log")
@requires_scope(scopes.PRIVACY_REQUEST_READ)
def privacy_request_log(request_id: str):
    """fidesops' execution log of one request, paginated (``items``, ``total``, ``page``, ``size``)."""
    privacy_requests.get_request(request_id)  # 404 with fidesops' message for an unknown id
    page, size = page_params()
    entries = execution_log.entries(request_id)
    return jsonify(page_json(entries[(page - 1) * size : page * size], len(entries), page, size))


@bp.get("/privacy-request/<request_id>/package")
@requires_scope(scopes.PRIVACY_REQUEST_DOWNLOAD_PACKAGE)
def get_package(request_id: str):
    """The package streamed chunk by chunk, byte for byte what ``jsonify(package)`` would answer; the
    audit event is committed before the first byte."""
    pr = privacy_requests.get_request(request_id)
    package = privacy_requests.get_package(pr, g.api_actor, action="package.downloaded")
    db.session.commit()
    response = Response(stream_with_context(_as_jsonify_would(package)), mimetype=current_app.json.mimetype)
    response.headers["Cache-Control"] = "no-store"
    return response


def _as_jsonify_would(package) -> Iterator[bytes]:
    """The app's JSON provider's settings (sorted keys, ASCII, compact unless debugging) and its newline."""
    provider = current_app.json
    indented = provider.compact is False or (provider.compact is None and current_app.debug)
    return chain(
        reports.iter_package_json(
            package,
            indent=2 if indented else None,
            separators=None if indented else (",", ":"),
            sort_keys=provider.sort_keys,
            ensure_ascii=provider.ensure_ascii,
        ),
        [b"\n"],
    )
