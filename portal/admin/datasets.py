"""Admin: database connections (S5) — create one, enter its connection details, test it, attach datasets.

One page per database connection. Thin doors into services.db_connections and services.datasets.
"""

from __future__ import annotations

import contextlib

from flask import abort, flash, make_response, redirect, render_template, request, url_for

from portal.admin import bp
from portal.admin.dataset_forms import DATABASE_LABELS, ConfirmForm, DatasetForm, NewDatabaseForm, SecretsForm
from portal.execution import dispatch
from portal.models import ConnectionConfig
from portal.services import NotFound, ValidationFailed, connections, datasets, db_connections
from portal.web import current_actor, refusable


def _add_error(form, name: str, message: str) -> None:
    field = form[name] if name in form else next(f for f in form if f.name != "csrf_token")
    field.errors = [*field.errors, message]


@bp.route("/databases/new", methods=["GET", "POST"])
def new_database():
    form = NewDatabaseForm()
    if form.validate_on_submit():
        with refusable() as outcome:
            conn = connections.create_connection(
                name=form.name.data,
                key=form.key.data,
                description=form.description.data,
                connection_type=form.connection_type.data,
                actor=current_actor(),
            )
        if exc := outcome.error:
            field = "key" if isinstance(exc, connections.DuplicateKey) and form.key.data else "name"
            if isinstance(exc, ValidationFailed) and exc.errors and exc.errors[0][0]:
                field = exc.errors[0][0][0]
            _add_error(form, field, exc.words)
        else:
            dispatch.commit_and_run()
            flash(f"Created “{conn.name}” (key {conn.key}). Now enter its connection details.", "success")
            return redirect(url_for(".database", key=conn.key))
    return render_template("admin/datasets/new.html", form=form)


def _render(conn: ConnectionConfig, secrets_form=None, dataset_form=None, status: int = 200):
    secrets_form = secrets_form or SecretsForm.for_type(
        conn.connection_type, data=db_connections.form_defaults(conn), formdata=None
    )
    dataset_form = dataset_form or DatasetForm(formdata=None)
    edit = request.args.get("edit")
    if edit and not dataset_form.text.data:
        with contextlib.suppress(NotFound):
            dataset_form.text.data = datasets.to_yaml(datasets.get_dataset(conn, edit))
    page = render_template(
        "admin/datasets/detail.html",
        conn=conn,
        type_label=DATABASE_LABELS[conn.connection_type],
        target=db_connections.describe(conn),
        secrets_form=secrets_form,
        dataset_form=dataset_form,
        configs=datasets.datasets_of(conn),
    )
    return page, status


@bp.get("/connections/<key>/database")
def database(key: str):
    return _render(db_connections.get_database(key))


@bp.post("/connections/<key>/database/secrets")
def database_secrets(key: str):
    conn = db_connections.get_database(key)
    form = SecretsForm.for_type(conn.connection_type)
    if not form.validate_on_submit():
        return _render(conn, secrets_form=form, status=400)
    with refusable() as outcome:
        db_connections.save_secrets(conn, form.values(), current_actor())
    if exc := outcome.error:
        located = isinstance(exc, ValidationFailed) and exc.errors
        _add_error(form, exc.errors[0][0][0] if located else "url", exc.words)
        return _render(conn, secrets_form=form, status=422)
    dispatch.commit_and_run()
    flash("Saved the connection details (encrypted). Use “Test connection” to check them.", "success")
    return redirect(url_for(".database", key=conn.key))


@bp.post("/connections/<key>/database/test")
def test_database(key: str):
    conn = db_connections.get_database(key)
    if not ConfirmForm().validate_on_submit():
        abort(400, "The form expired; reload the page and try again.")
    result = db_connections.test_connection(conn, current_actor())
    dispatch.commit_and_run()
    flash(
        ("Test connection succeeded. " if result.succeeded else "Test connection failed. ") + result.message,
        "success" if result.succeeded else "danger",
    )
    return redirect(url_for(".database", key=conn.key))


@bp.post("/connections/<key>/datasets")
def save_datasets(key: str):
    conn = db_connections.get_database(key)
    form = DatasetForm()
    if not form.validate_on_submit():
        return _render(conn, dataset_form=form, status=400)
    text = form.text.data or ""
    if form.file.data:
        try:
            text = form.file.data.read().decode("utf-8-sig")
        except UnicodeDecodeError:
            form.file.errors = [*form.file.errors, "The file is not UTF-8 text; save it as UTF-8 YAML."]
            return _render(conn, dataset_form=form, status=422)
    with refusable() as outcome:
        saved = datasets.save_dataset_text(conn, text, current_actor())
    if exc := outcome.error:
        problems = [message for _, message in exc.errors] if isinstance(exc, ValidationFailed) else []
        form.text.errors = [*form.text.errors, *(problems or [exc.words])]
        if form.file.data and not form.text.data:
            form.text.data = text  # show what was uploaded next to the errors
        return _render(conn, dataset_form=form, status=422)
    dispatch.commit_and_run()
    names = ", ".join(f"“{config.fides_key}”" for config in saved)
    flash(f"Saved dataset{'s' if len(saved) > 1 else ''} {names}.", "success")
    return redirect(url_for(".database", key=conn.key))


@bp.get("/connections/<key>/datasets/<fides_key>.yml")
def download_dataset(key: str, fides_key: str):
    conn = db_connections.get_database(key)
    config = datasets.get_dataset(conn, fides_key)
    response = make_response(datasets.to_yaml(config))
    response.headers["Content-Type"] = "application/x-yaml; charset=utf-8"
    response.headers["Content-Disposition"] = f'attachment; filename="{config.fides_key}.yml"'
    return response


@bp.post("/connections/<key>/datasets/<fides_key>/delete")
def delete_dataset(key: str, fides_key: str):
    conn = db_connections.get_database(key)
    if not ConfirmForm().validate_on_submit():
        abort(400, "The form expired; reload the page and try again.")
    with refusable() as outcome:
        datasets.delete_dataset(conn, fides_key, current_actor())
    if isinstance(outcome.error, NotFound):
        raise outcome.error
    if outcome.error:
        flash(outcome.error.words, "danger")
    else:
        dispatch.commit_and_run()
        flash(f"Deleted dataset “{fides_key}”.", "success")
    return redirect(url_for(".database", key=conn.key))
