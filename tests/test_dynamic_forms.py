"""Manual-input form classes built from field definitions (portal.dynamic_forms)."""

from __future__ import annotations

import pytest
from werkzeug.datastructures import MultiDict

from portal.dynamic_forms import (
    NOTHING_ENTERED,
    build_manual_input_form,
    prefill,
)
from portal.services import ValidationFailed
from tests.workflow_helpers import field


def with_ids(fields: list[dict]) -> list[dict]:
    """Ids by position, as the test helpers give them (real ids are random tokens)."""
    return [{"id": str(index), **definition} for index, definition in enumerate(fields)]


FIELDS = with_ids(
    [
        field("First Name", required=True, help_text="As on the account"),
        field("Notes", type="textarea"),
        field("Contact Email", type="email"),
        field("Balance", type="number"),
        field("Signed Up", type="date"),
        field("Subscribed", type="boolean"),
    ]
)


@pytest.fixture
def ctx(app):
    with app.test_request_context():
        yield


def bound(fields, **data):
    """A form of ``fields`` bound to submitted data (as a POST would bind it)."""
    return build_manual_input_form(fields, 1)(formdata=MultiDict(data))


def test_each_call_builds_a_fresh_class_with_its_own_fields(ctx):
    first = build_manual_input_form(with_ids([field("Name"), field("Age")]), 1)
    second = build_manual_input_form(with_ids([field("Ticket")]), 1)
    again = build_manual_input_form(with_ids([field("Name"), field("Age")]), 1)
    assert first is not again and first is not second
    assert [f.name for f in first().manual_fields()] == ["field_0", "field_1"]
    assert [f.name for f in second().manual_fields()] == ["field_0"]
    assert "field_1" not in second()
    assert second().field_0.label.text == "Ticket" and first().field_0.label.text == "Name"
    assert first.labels == ("name", "age") and second.labels == ("ticket",)


def test_inputs_are_named_after_field_ids_and_the_form_carries_its_version(ctx):
    fields = [field("Name", id="a1b2"), field("Age", id="c3d4")]
    reordered = [fields[1], {**fields[0], "pii_field": "Full name", "dsr_package_label": "full_name"}]
    form = build_manual_input_form(reordered, 7).showing({})
    assert [f.name for f in form.manual_fields()] == ["field_c3d4", "field_a1b2"]
    assert [f.label.text for f in form.manual_fields()] == ["Age", "Full name"]
    assert form.version() == '<input id="version" name="version" type="hidden" value="7">'
    posted = type(form)(formdata=MultiDict({"field_a1b2": "Jane", "field_c3d4": "42", "version": "7"}))
    assert posted.values() == {"age": "42", "full_name": "Jane"}
    assert posted.built_from() == 7


@pytest.mark.parametrize("posted", ["", "x", "-1", "1.0", "٣", "99999999999"])
def test_a_version_that_is_not_a_plain_number_is_none(ctx, posted):
    assert bound(FIELDS, version=posted).built_from() is None


def test_labels_never_become_attribute_names(ctx):
    fields = with_ids([field("Dict", "dict"), field("Klass", "__class__"), field("Private", "_x")])
    form = bound(fields, field_0="a")
    assert form.values() == {
        "dict": "a",
        "__class__": None,
        "_x": None,
    }
    assert not hasattr(form, "dict") and type(form).__name__ == "GeneratedManualInputForm"


def test_labels_descriptions_required_and_input_types(ctx):
    form = build_manual_input_form(FIELDS, 1)()
    first, notes, email, number, when, flag = form.manual_fields()
    assert first.label.text == "First Name" and first.description == "As on the account"
    assert first.flags.required and not notes.flags.required
    assert 'type="text"' in first() and "<textarea" in notes()
    assert 'type="email"' in email()
    assert 'inputmode="decimal"' in number() and 'type="text"' in number()
    assert 'type="date"' in when()
    assert flag.type == "SelectField"
    assert [(c.value, c.label) for c in flag.choices] == [("", "(blank)"), ("true", "Yes"), ("false", "No")]
    assert 'maxlength="10000"' in first()


@pytest.mark.parametrize(
    ("index", "value", "message"),
    [
        (2, "not-an-email", "Enter an email address, e.g. name@example.com."),
        (3, "twelve", "Enter a number, e.g. 42 or 3.5."),
        (3, "nan", "Enter a finite number, e.g. 42 or 3.5."),
        (4, "2020-13-01", "Enter a date as YYYY-MM-DD."),
        (5, "maybe", "Not a valid choice."),
        (1, "x" * 10_001, "Enter at most 10000 characters."),
    ],
)
def test_server_side_validation(ctx, index, value, message):
    form = bound(FIELDS, field_0="Jane", **{f"field_{index}": value})
    assert form.validate() is False
    assert form[f"field_{index}"].errors == [message]
    assert form[f"field_{index}"].data == value  # kept for the re-rendered form


@pytest.mark.parametrize(
    ("index", "value"),
    [(2, "jane@example.com"), (3, "-12.50"), (3, "1e3"), (4, "2020-12-31"), (5, "false"), (1, "x" * 10_000)],
)
def test_valid_typed_values_pass(ctx, index, value):
    form = bound(FIELDS, field_0="Jane", **{f"field_{index}": value})
    assert form.validate(), form.errors


def test_required_only_matters_when_something_is_entered(ctx):
    partial = bound(FIELDS, field_0="  ", field_1="a note")
    assert partial.validate() is False and partial.field_0.errors == ["This field is required."]
    empty = bound(FIELDS, field_0="", field_5="")
    assert empty.validate() is False
    assert empty.form_errors == [NOTHING_ENTERED] and empty.field_0.errors == []


def test_values_map_back_to_labels_with_blank_as_none_as_the_form_reads_them(ctx):
    data = {"field_0": "Jane ", "field_1": "   ", "field_3": "12", "field_5": "true", "field_7": "ignored"}
    form = bound(FIELDS, **data)
    assert form.validate()
    values = form.values()
    assert values == {
        "first_name": "Jane ",
        "notes": None,
        "contact_email": None,
        "balance": "12",
        "signed_up": None,
        "subscribed": "true",
    }
    typed = {label: field.data for label, field in zip(form.labels, form.manual_fields(), strict=True)}
    assert values == {label: value if value and value.strip() else None for label, value in typed.items()}


@pytest.mark.parametrize(
    ("data", "expected"),
    [({"nothing_found": "Nothing found in this system"}, True), ({"nothing_found": ""}, False), ({}, False)],
)
def test_the_nothing_found_button_is_read_as_wtforms_reads_a_submit_button(ctx, data, expected):
    assert bound(FIELDS, **data).nothing_found.data is expected


def test_prefill_keeps_existing_labels_and_normalises_booleans(ctx):
    data = prefill(FIELDS, {"first_name": "Jane", "subscribed": "Yes", "gone": "x", "notes": None})
    assert data == {
        "field_0": "Jane",
        "field_1": "",
        "field_2": "",
        "field_3": "",
        "field_4": "",
        "field_5": "true",
    }
    form = build_manual_input_form(FIELDS, 1)(formdata=None, data=data)
    assert 'value="Jane"' in form.field_0()
    assert '<option selected value="true">Yes</option>' in form.field_5()


def test_service_errors_are_attached_to_the_matching_inputs(ctx):
    form = bound(FIELDS, field_0="Jane")
    error = ValidationFailed(
        "balance: must be a number; ???",
        [(("balance",), "balance: must be a number"), (("elsewhere",), "something else broke")],
    )
    form.show_service_errors(error)
    assert form.field_3.errors == ["Must be a number."]
    assert form.form_errors == ["something else broke"]
    bare = bound(FIELDS, field_0="Jane")
    bare.show_service_errors(ValidationFailed("The upload must be an object."))
    assert bare.form_errors == ["The upload must be an object."]
