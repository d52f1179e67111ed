// Field editor niceties. The editor works fully without this file: every button is a server round trip.
//  - the "Blank: <label>" hint follows what is typed in "PII field" (the server's rule is the real one);
//  - leaving the page with unsaved changes asks first.
(function () {
  "use strict";

  // Mirrors portal.services.connections.snake_case for Latin text; other scripts get the generic hint.
  function snakeCase(text) {
    return (text || "")
      .normalize("NFKD")
      .replace(/[\u0300-\u036f]/g, "")
      .toLowerCase()
      .replace(/[^a-z0-9_\s-]/g, "")
      .replace(/^[\s-]+|[\s-]+$/g, "")
      .replace(/[\s-]+/g, "_");
  }

  function wireRow(row) {
    var pii = row.querySelector("input[name$='-pii_field']");
    var label = row.querySelector("input[name$='-dsr_package_label']");
    if (!pii || !label) {
      return;
    }
    var help = document.getElementById(label.id + "-help");
    pii.addEventListener("input", function () {
      var hint = snakeCase(pii.value);
      label.placeholder = hint || "generated when saved";
      if (help) {
        help.textContent = hint ? "Blank: " + hint : "Blank: made from the PII field.";
      }
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var form = document.querySelector("[data-field-editor]");
    if (!form) {
      return;
    }
    Array.prototype.forEach.call(form.querySelectorAll("[data-field-row]"), wireRow);

    var dirty = form.getAttribute("data-unsaved") === "true";
    var submitting = false;
    form.addEventListener("input", function () { dirty = true; });
    form.addEventListener("change", function () { dirty = true; });
    form.addEventListener("submit", function () { submitting = true; });
    window.addEventListener("beforeunload", function (event) {
      if (dirty && !submitting) {
        event.preventDefault();
        event.returnValue = "";
      }
    });
  });
})();
