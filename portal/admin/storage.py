"""Admin: storage destinations — list, create, edit, keys, test, delete. Thin doors into services.storage."""

from __future__ import annotations

from flask import abort, current_app, flash, redirect, render_template, request, url_for

from portal.admin import bp
from portal.admin.dataset_forms import ConfirmForm
from portal.admin.storage_forms import TYPE_LABELS, StorageForm, StorageSecretsForm
from portal.extensions import db
from portal.models import StorageConfig
from portal.models.storage import STORAGE_TYPES
from portal.routing import page_number
from portal.services import DomainError, ValidationFailed, storage, storage_export
from portal.web import current_actor, refusable


def _show_error(form, exc: DomainError) -> None:
    """The service's message next to the field it is about (``details.bucket`` → bucket), else the name."""
    field = "key" if isinstance(exc, storage.DuplicateKey) and "key" in form else "name"
    if isinstance(exc, ValidationFailed) and exc.errors and exc.errors[0][0]:
        named = str(exc.errors[0][0][0]).removeprefix("details.")
        field = named if named in form else field
    form[field].errors = [*form[field].errors, exc.words]


@bp.route("/storage")
def storage_configs():
    size = current_app.config["PAGE_SIZE"]
    page = page_number()
    items, total = storage.list_storage_configs(page, size)
    pages = max((total + size - 1) // size, 1)
    if page > pages:
        return redirect(url_for(".storage_configs", page=pages))
    return render_template(
        "admin/storage/index.html",
        configs=items,
        total=total,
        page=page,
        pages=pages,
        describe=storage_export.describe,
        type_labels=TYPE_LABELS,
        root=storage.local_root(),
    )


@bp.route("/storage/new", methods=["GET", "POST"])
def new_storage():
    storage_type = request.args.get("type", "local")
    if storage_type not in STORAGE_TYPES:
        abort(404, "Unknown storage type: choose local or s3.")
    form = StorageForm.for_type(storage_type, new=True)
    if form.validate_on_submit():
        with refusable() as outcome:
            config = storage.create_storage_config(
                name=form.name.data,
                key=form.key.data,
                storage_type=storage_type,
                details=form.details(),
                response_format=form.format.data,
                actor=current_actor(),
            )
        if outcome.error:
            _show_error(form, outcome.error)
        else:
            db.session.commit()
            nextstep = (
                "Now save its access keys and test it." if storage.uses_secret_keys(config) else "Test it."
            )
            flash(
                f"Created the storage destination “{config.name}” (key {config.key}). {nextstep}", "success"
            )
            return redirect(url_for(".edit_storage", key=config.key))
    return render_template(
        "admin/storage/new.html",
        form=form,
        storage_type=storage_type,
        type_label=TYPE_LABELS[storage_type],
        root=storage.local_root(),
    )


def _render_edit(config: StorageConfig, form=None, secrets_form=None, status: int = 200):
    if form is None:
        form = StorageForm.for_type(
            config.type,
            new=False,
            formdata=None,
            data={"name": config.name, "format": config.format, **config.details},
        )
    page = render_template(
        "admin/storage/edit.html",
        config=config,
        form=form,
        secrets_form=secrets_form or StorageSecretsForm(formdata=None),
        type_label=TYPE_LABELS[config.type],
        where=storage_export.describe(config),
        has_secrets=storage.has_secrets(config),
        uses_secret_keys=storage.uses_secret_keys(config),
        root=storage.local_root(),
    )
    return page, status


@bp.route("/storage/<key>", methods=["GET", "POST"])
def edit_storage(key: str):
    config = storage.get_storage_config(key)
    if request.method == "GET":
        return _render_edit(config)
    form = StorageForm.for_type(config.type, new=False)
    if not form.validate_on_submit():
        return _render_edit(config, form=form, status=400)
    details = form.details()
    if "object_name" in config.details:
        details["object_name"] = config.details["object_name"]  # set through the API; not on this form
    with refusable() as outcome:
        storage.update_storage_config(
            config,
            actor=current_actor(),
            name=form.name.data,
            details=details,
            response_format=form.format.data,
        )
    if outcome.error:
        _show_error(form, outcome.error)
        return _render_edit(config, form=form, status=422)
    db.session.commit()
    flash(f"Saved “{config.name}”.", "success")
    return redirect(url_for(".edit_storage", key=config.key))


@bp.post("/storage/<key>/secrets")
def storage_secrets(key: str):
    config = storage.get_storage_config(key)
    form = StorageSecretsForm()
    if not form.validate_on_submit():
        return _render_edit(config, secrets_form=form, status=400)
    with refusable() as outcome:
        storage.set_secrets(config, form.values(), current_actor())
    if isinstance(exc := outcome.error, ValidationFailed):
        field = exc.errors[0][0][0] if exc.errors and exc.errors[0][0][0] in form else "aws_access_key_id"
        form[field].errors = [*form[field].errors, exc.words]
        return _render_edit(config, secrets_form=form, status=422)
    if outcome.error:
        flash(outcome.error.words, "danger")
        return redirect(url_for(".edit_storage", key=config.key))
    db.session.commit()
    flash("Saved the access keys (encrypted). Use “Test” to check them.", "success")
    return redirect(url_for(".edit_storage", key=config.key))


@bp.post("/storage/<key>/test")
def test_storage(key: str):
    config = storage.get_storage_config(key)
    if not ConfirmForm().validate_on_submit():
        abort(400, "The form expired; reload the page and try again.")
    result = storage_export.test_storage(config, current_actor())
    db.session.commit()
    flash(
        ("Test succeeded. " if result.succeeded else "Test failed. ") + result.message,
        "success" if result.succeeded else "danger",
    )
    return redirect(url_for(".edit_storage", key=config.key))


@bp.post("/storage/<key>/delete")
def delete_storage(key: str):
    config = storage.get_storage_config(key)
    if not ConfirmForm().validate_on_submit():
        abort(400, "The form expired; reload the page and try again.")
    name = config.name
    with refusable() as outcome:
        storage.delete_storage_config(config, current_actor())
    if outcome.error:
        flash(outcome.error.words, "danger")
        return redirect(url_for(".edit_storage", key=key))
    db.session.commit()
    flash(
        f"Deleted the storage destination “{name}” (key {key}). Files it holds stay where they are.",
        "success",
    )
    return redirect(url_for(".storage_configs"))
