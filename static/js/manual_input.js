// Manual-input form: warn before leaving with unsaved changes. The form works the same without JS.
(function () {
  "use strict";
  var form = document.querySelector("form[data-unsaved-warning]");
  if (!form) {
    return;
  }
  var dirty = false;
  var markDirty = function () {
    dirty = true;
  };
  form.addEventListener("input", markDirty);
  form.addEventListener("change", markDirty);
  // "Nothing found" stores an empty entry: ask first when fields hold values.
  var nothingFound = form.querySelector("[data-nothing-found]");
  if (nothingFound) {
    nothingFound.addEventListener("click", function (event) {
      var typed = Array.prototype.some.call(form.elements, function (el) {
        return el.name && el.name.indexOf("field_") === 0 && el.value.trim() !== "";
      });
      if (typed && !window.confirm("Save “nothing found” and clear the values in the fields?")) {
        event.preventDefault();
      }
    });
  }
  form.addEventListener("submit", function () {
    dirty = false;
  });
  window.addEventListener("beforeunload", function (event) {
    if (dirty) {
      event.preventDefault();
      event.returnValue = "";
    }
  });
})();
