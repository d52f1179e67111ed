"""The manual-input form of one request and one manual system: what staff found by hand (S4).

A save is one service call (``manual_inputs.save_manual_input``); a refused one shows the form again with
what was typed, and says why: a refusal, a rule the values broke, or the fields changed while the form was
open (then the typed values are shown under their own fields, matched by id, and nothing is stored).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from flask import redirect, render_template, request, url_for

from portal.dynamic_forms import ManualInputForm, manual_input_form_for
from portal.execution import dispatch
from portal.extensions import db
from portal.models import Role
from portal.requests import bp
from portal.requests.views import confirmed
from portal.security import roles_required
from portal.services import (
    FieldsChanged,
    ValidationFailed,
    attachments,
    delivery,
    manual_inputs,
    privacy_requests,
)
from portal.uploads import accepts_attachments, file_response
from portal.web import current_actor, refusable

STALE_WARNING = "The fields of this system changed since this entry was saved; review and save again."


@dataclass
class ShownAgain:
    """A posted manual-input form shown again instead of saved, and why."""

    form: ManualInputForm
    refusal: str | None = None
    status: int = 200
    changed: str | None = None  # the fields changed while the form was open
    removed: list[tuple[str, str]] = field(default_factory=list)  # (pii_field, typed value) of gone fields


def _fields_changed(request_id: str, connection_key: str, built_from: int | None, message: str) -> ShownAgain:
    """The form at the current version with what was typed, under the fields' own labels (matched by
    id); what was typed into fields that no longer exist is listed, so nothing typed vanishes unseen."""
    system = manual_inputs.manual_system(request_id, connection_key)  # read again: the version moved
    form = manual_input_form_for(system)()
    form.version.data = str(system.version)
    removed = []
    if built_from:
        older = system._replace(version=built_from)
        typed = manual_input_form_for(older)().values() if older.fields else {}
        current_ids = set(form.field_ids)
        removed = [
            (definition["pii_field"], typed[definition["dsr_package_label"]].strip())
            for definition in older.fields
            if definition["id"] not in current_ids
            and isinstance(typed.get(definition["dsr_package_label"]), str)
        ]
    return ShownAgain(form, status=409, changed=message, removed=removed)


def _save_manual_input(system: manual_inputs.ManualSystem, request_id: str) -> ShownAgain | None:
    """Save the posted form (None), or say why it is shown again instead: nothing is stored then.

    A valid save is checked by the service, which checks all the form would; when it refuses, the form's
    own checks run for their messages next to each input, and the service's are added where the form
    found nothing wrong.
    """
    form = manual_input_form_for(system)()
    refusal = system.refusal(request_id)
    if refusal:
        return ShownAgain(form, refusal, 400)  # what was typed stays on screen; nothing is stored
    if form.built_from() != system.version:
        message = str(manual_inputs.fields_changed(system.name))
        return _fields_changed(request_id, system.key, form.built_from(), message)
    uploads = {}
    if form.nothing_found.data:
        confirmed()
        values = {}  # "searched, nothing found": required fields do not apply, stored files go
    else:
        values, uploads = form.values(), form.uploads()
        if all(value is None for value in values.values()) and not uploads:
            form.validate()  # says to fill in a field or press "Nothing found"
            return ShownAgain(form)
    with refusable() as outcome:
        manual_inputs.save_manual_input(
            request_id,
            system.key,
            values,
            current_actor(),
            system,
            built_from=form.built_from(),
            uploads=uploads,
        )
    if isinstance(outcome.error, ValidationFailed):
        if form.validate():
            form.show_service_errors(outcome.error)
        return ShownAgain(form)
    if isinstance(outcome.error, FieldsChanged):
        return _fields_changed(request_id, system.key, form.built_from(), outcome.error.words)
    if outcome.error:
        return ShownAgain(form, outcome.error.words, 400)
    dispatch.commit_and_run()
    return None


@bp.route("/<request_id>/manual/<connection_key>", methods=["GET", "POST"])
@accepts_attachments
@roles_required(Role.ADMIN, Role.STAFF)
def manual_input(request_id: str, connection_key: str):
    system = manual_inputs.manual_system(request_id, connection_key)
    if request.method == "GET":
        form = manual_input_form_for(system).showing(system.current_values())
        return _render(request_id, system, ShownAgain(form, system.refusal(request_id)))
    shown = _save_manual_input(system, request_id)
    if shown is None:
        # The request page says what was saved (``saved_notice``): the message travels in the redirect, not
        # in the session, so a save does not re-sign the session cookie.
        return redirect(url_for(".detail", request_id=request_id, saved=connection_key))
    system = manual_inputs.manual_system(request_id, connection_key)  # the entry as it is now
    revealed = _reveal(request_id, system) if shown.form.reveal.data == "1" else None
    return _render(request_id, system, shown, revealed)


@bp.post("/<request_id>/manual/<connection_key>/identity")
@accepts_attachments  # the button posts the whole form, files chosen included (they are not kept)
@roles_required(Role.ADMIN, Role.STAFF)
def manual_input_identity(request_id: str, connection_key: str):
    """The form with whom to look up beside it: shown on demand, audited, never in a URL. The button posts
    the form itself, so what was typed so far is shown again, unsaved."""
    system = manual_inputs.manual_system(request_id, connection_key)
    confirmed()
    form = manual_input_form_for(system)()
    return _render(
        request_id, system, ShownAgain(form, system.refusal(request_id)), _reveal(request_id, system)
    )


def _reveal(request_id: str, system: manual_inputs.ManualSystem) -> dict | None:
    """The identity, audited as shown beside this system's form (None: purged, the page says nothing)."""
    with refusable() as outcome:
        revealed = privacy_requests.reveal_identity(
            privacy_requests.get_request(request_id), current_actor(), shown_with=system.key
        )
    if outcome.error:
        return None
    dispatch.commit_and_run()  # the audit event
    return revealed


def _stale_warning(request_id: str, system: manual_inputs.ManualSystem) -> str:
    if system.sent_back and system.entry.version == system.version:
        reason = delivery.sent_back_note(request_id)
        said = f" They said: “{reason}”." if reason else ""
        return (
            f"A reviewer sent this system's entry back for re-review.{said} Check the values and save again."
        )
    return STALE_WARNING


def _has_files(system: manual_inputs.ManualSystem) -> bool:
    return any(field.get("type") == "file" for field in system.fields)


def _render(
    request_id: str, system: manual_inputs.ManualSystem, shown: ShownAgain, revealed: dict | None = None
):
    if revealed:
        shown.form.reveal.data = "1"
    shown.form.show_stored(system.current_values())
    return (
        render_template(
            "requests/manual_input.html",
            request_id=request_id,
            system=system,
            form=shown.form,
            stale_warning=_stale_warning(request_id, system) if system.stale and not shown.changed else None,
            field_changes=system.changes()
            if system.entry and system.entry.version != system.version
            else None,
            refusal=shown.refusal,
            changed=shown.changed,
            removed=shown.removed,
            revealed=revealed,
            attachment_limits=attachments.limits() if _has_files(system) else None,
            accept=attachments.accept_attribute() if _has_files(system) else "",
        ),
        shown.status,
    )


@bp.get("/<request_id>/manual/<connection_key>/files/<attachment_id>")
@roles_required(Role.ADMIN, Role.STAFF)
def saved_file(request_id: str, connection_key: str, attachment_id: str):
    """A file saved on this entry, as a download (never shown inline), audited before the first byte."""
    system = manual_inputs.manual_system(request_id, connection_key)
    item, body = attachments.download_saved(
        request_id, system.connection_id, system.key, attachment_id, current_actor()
    )
    db.session.commit()
    return file_response(body, item)
