"""Admin: connections and the manual-webhook field editor. Thin doors into services.connections/webhooks.

Views commit with ``dispatch.commit_and_run()``: disabling or deleting a webhook can make waiting requests
runnable (S4 "never stuck"), and those runs are queued only once the change is committed.
"""

from __future__ import annotations

from flask import abort, current_app, flash, redirect, render_template, request, url_for

from portal.admin import bp
from portal.admin.connection_forms import (
    ConfirmDeleteForm,
    EditConnectionForm,
    NewConnectionForm,
    ToggleConnectionForm,
    WebhookFieldsForm,
)
from portal.execution import dispatch
from portal.models import ConnectionConfig, ConnectionType
from portal.routing import MAX_DATABASE_ID, bounded_int, page_number
from portal.security import safe_next_url
from portal.services import DomainError, FieldsChanged, ValidationFailed
from portal.services import connections as connection_service
from portal.services import tasks as task_service
from portal.services import webhooks as webhook_service
from portal.web import current_actor, refusable

BLANK_ROW = {"pii_field": "", "dsr_package_label": None, "type": "text", "required": False, "help_text": None}


def _show_errors(form, exc: DomainError, default_field: str) -> None:
    """Put a service error next to the form field it is about (or the default one)."""
    field = default_field
    if isinstance(exc, connection_service.DuplicateKey):
        field = "key" if "key" in form else "name"
    elif isinstance(exc, ValidationFailed) and exc.errors and exc.errors[0][0]:
        field = exc.errors[0][0][0] if exc.errors[0][0][0] in form else default_field
    form[field].errors = [*form[field].errors, exc.words]


# --- the list --------------------------------------------------------------------------------------


@bp.route("/connections")
def connections():
    size = current_app.config["PAGE_SIZE"]
    page = page_number()
    items, total = connection_service.list_connections(page, size)
    pages = max((total + size - 1) // size, 1)
    if page > pages:
        return redirect(url_for(".connections", page=pages))
    return render_template(
        "admin/connections/index.html",
        connections=items,
        total=total,
        page=page,
        pages=pages,
    )


# --- create, edit, disable, delete ------------------------------------------------------------------


@bp.route("/connections/new", methods=["GET", "POST"])
def new_connection():
    form = NewConnectionForm()
    if form.validate_on_submit():
        with refusable() as outcome:
            conn = connection_service.create_connection(
                name=form.name.data,
                key=form.key.data,
                description=form.description.data,
                connection_type=ConnectionType.MANUAL_WEBHOOK.value,
                actor=current_actor(),
            )
        if outcome.error:
            _show_errors(form, outcome.error, "name")
        else:
            dispatch.commit_and_run()
            flash(
                f"Created “{conn.name}” (key {conn.key}). Now define the fields staff will fill in.",
                "success",
            )
            return redirect(url_for(".webhook_fields", key=conn.key))
    return render_template("admin/connections/new.html", form=form)


@bp.route("/connections/<key>/edit", methods=["GET", "POST"])
def edit_connection(key: str):
    conn = connection_service.get_connection(key)
    form = EditConnectionForm(obj=conn)
    if form.validate_on_submit():
        with refusable() as outcome:
            connection_service.update_connection(
                conn, actor=current_actor(), name=form.name.data, description=form.description.data
            )
        if outcome.error:
            _show_errors(form, outcome.error, "name")
        else:
            dispatch.commit_and_run()
            flash(f"Saved “{conn.name}”.", "success")
            return redirect(url_for(".connections"))
    return render_template(
        "admin/connections/edit.html",
        form=form,
        conn=conn,
    )


@bp.route("/connections/<key>/toggle", methods=["POST"])
def toggle_connection(key: str):
    conn = connection_service.get_connection(key)
    form = ToggleConnectionForm()
    if not form.validate_on_submit():
        abort(400, "Choose whether to disable or enable the connection.")
    disable = form.action.data == "disable"
    connection_service.set_disabled(conn, disable, current_actor())
    dispatch.commit_and_run()
    if disable:
        flash(f"Disabled “{conn.name}”: requests no longer wait for it.", "success")
    else:
        flash(f"Enabled “{conn.name}”: new runs of requests wait for its data again.", "success")
    return redirect(safe_next_url(form.next.data, "admin.connections"))


@bp.route("/connections/<key>/delete", methods=["GET", "POST"])
def delete_connection(key: str):
    conn = connection_service.get_connection(key)
    form = ConfirmDeleteForm()
    if form.validate_on_submit():
        name = conn.name
        connection_service.delete_connection(conn, current_actor())
        dispatch.commit_and_run()
        flash(f"Deleted “{name}” (key {key}).", "success")
        return redirect(url_for(".connections"))
    return render_template(
        "admin/connections/delete.html",
        form=form,
        conn=conn,
        webhook=conn.manual_webhook,
        saved_inputs=connection_service.saved_input_count(conn),
        what="connection",
    )


# --- the field editor -------------------------------------------------------------------------------


def _apply_row_action(rows: list[dict], action: str, index: int) -> tuple[list[dict], int | None]:
    """The rows after Remove / Move up / Move down, and the row to focus next."""
    if action == "remove":
        del rows[index]
        return rows, min(index, len(rows) - 1) if rows else None
    target = index - 1 if action == "move_up" else index + 1
    if 0 <= target < len(rows):
        rows[index], rows[target] = rows[target], rows[index]
        return rows, target
    return rows, index


def _rows_phrase(indexes: list[int]) -> str:
    numbers = [str(i + 1) for i in indexes]
    if len(numbers) == 1:
        return f"Field {numbers[0]}"
    return f"Fields {', '.join(numbers[:-1])} and {numbers[-1]}"


def _attach_field_errors(form: WebhookFieldsForm, exc: ValidationFailed) -> list[str]:
    """Each message next to its row's input; returns the summary lines shown above the rows."""
    general: list[str] = []
    rows_by_message: dict[str, list[int]] = {}
    for (location, _), message in zip(exc.errors, exc.error_words, strict=True):
        if not location:
            general.append(message)
            continue
        index = location[0]
        key = location[1] if len(location) > 1 else None
        if key in webhook_service.FIELD_KEYS:
            field = form.fields.entries[index].form[key]
            field.errors = [*field.errors, message]
        rows = rows_by_message.setdefault(message, [])
        if index not in rows:
            rows.append(index)
    summary = general + [f"{_rows_phrase(rows)}: {message}" for message, rows in rows_by_message.items()]
    return summary or [exc.words]


def _render_fields(conn: ConnectionConfig, form: WebhookFieldsForm, summary=(), focus_row=None):
    hints = [webhook_service.generated_label(entry.form.pii_field.data or "") for entry in form.fields]
    return render_template(
        "admin/connections/fields.html",
        conn=conn,
        webhook=conn.manual_webhook,
        form=form,
        hints=hints,
        summary=list(summary),
        focus_row=focus_row,
        max_rows=webhook_service.MAX_FIELDS,
        owners={user.id for user in task_service.owners_of(conn.id)},
        candidates=task_service.assignable_users(),
    )


def _fields(count: int) -> str:
    return f"{count} field{'s' if count != 1 else ''}"


@bp.route("/connections/<key>/fields", methods=["GET", "POST"])
def webhook_fields(key: str):
    conn = webhook_service.get_manual_connection(key)
    current = conn.manual_webhook.version if conn.manual_webhook else 0
    if request.method == "GET":
        # A list stored before the limit existed may be longer: the editor shows (and saves) the first
        # MAX_FIELDS rows, and the page says so.
        rows = (
            conn.manual_webhook.fields[: webhook_service.MAX_FIELDS] if conn.manual_webhook else [BLANK_ROW]
        )
        return _render_fields(
            conn, WebhookFieldsForm(formdata=None, data={"fields": rows, "version": current})
        )

    form = WebhookFieldsForm()
    if not form.validate():
        return _render_fields(conn, form, summary=["Some values were not accepted; check the marked rows."])
    rows = form.definitions()
    row_action = form.row_action()
    if row_action or form.add.data:
        # Add / Remove / Move re-render what was typed, without saving anything.
        if row_action:
            rows, focus = _apply_row_action(rows, *row_action)
        elif len(rows) < webhook_service.MAX_FIELDS:
            rows.append(dict(BLANK_ROW))
            focus = len(rows) - 1
        else:
            focus = None
        data = {"fields": rows, "version": form.version.data}
        return _render_fields(conn, WebhookFieldsForm(formdata=None, data=data), focus_row=focus)

    previous = conn.manual_webhook.version if conn.manual_webhook else None
    with refusable() as outcome:
        webhook = webhook_service.replace_fields(
            conn, rows, current_actor(), expected_version=form.edited_version()
        )
    if isinstance(outcome.error, ValidationFailed):
        return _render_fields(conn, form, summary=_attach_field_errors(form, outcome.error))
    if isinstance(outcome.error, FieldsChanged):
        # Saving again replaces theirs on purpose: the form now carries the version that is current.
        form.version.data = str(conn.manual_webhook.version if conn.manual_webhook else 0)
        return _render_fields(conn, form, summary=[outcome.error.words]), 409
    if outcome.error:
        return _render_fields(conn, form, summary=[outcome.error.words])
    dispatch.commit_and_run()
    if previous is None:
        flash(f"Saved {_fields(len(webhook.fields))} as version {webhook.version}.", "success")
    elif webhook.version == previous:
        flash(f"Nothing changed: the fields are the same as version {previous}.", "info")
    else:
        flash(
            f"Saved {_fields(len(webhook.fields))} as version {webhook.version}. Entries saved against "
            f"version {previous} now need a re-review by staff.",
            "success",
        )
    return redirect(url_for(".webhook_fields", key=conn.key))


@bp.route("/connections/<key>/fields/delete", methods=["GET", "POST"])
def delete_webhook(key: str):
    conn = webhook_service.get_manual_connection(key)
    if conn.manual_webhook is None:
        flash("This connection has no saved fields.", "info")
        return redirect(url_for(".webhook_fields", key=key))
    form = ConfirmDeleteForm()
    if form.validate_on_submit():
        webhook_service.delete_webhook(conn, current_actor())
        dispatch.commit_and_run()
        flash(f"Deleted the fields of “{conn.name}”: requests no longer wait for it.", "success")
        return redirect(url_for(".connections"))
    return render_template(
        "admin/connections/delete.html",
        form=form,
        conn=conn,
        webhook=conn.manual_webhook,
        saved_inputs=connection_service.saved_input_count(conn),
        what="fields",
    )


@bp.app_template_filter("connection_type_label")
def connection_type_label(value: str) -> str:
    return {
        "manual_webhook": "Manual webhook",
        "postgres": "PostgreSQL",
        "mysql": "MySQL",
        "sqlite": "SQLite",
    }.get(value, value.capitalize())


@bp.route("/connections/<key>/owners", methods=["POST"])
def webhook_owners(key: str):
    """The manual system's default owners: its new tasks go to the one with the fewest open tasks."""
    conn = webhook_service.get_manual_connection(key)
    if not ConfirmDeleteForm().validate_on_submit():
        abort(400, "The form expired or was sent from another site. Go back, reload the page and try again.")
    chosen = [bounded_int(value, 1, MAX_DATABASE_ID) for value in request.form.getlist("owner")]
    chosen = [user_id for user_id in chosen if user_id is not None]
    with refusable() as outcome:
        owners = task_service.set_owners(conn, chosen, current_actor())
    if outcome.error:
        flash(outcome.error.words, "error")
    else:
        dispatch.commit_and_run()
        names = ", ".join(user.display_name for user in owners) or "nobody (its new tasks stay unassigned)"
        flash(f"Owners of “{conn.name}”: {names}.", "success")
    return redirect(url_for(".webhook_fields", key=conn.key) + "#owners-heading")
