// Progressive enhancements only: every page works without JavaScript.
(function () {
  "use strict";
  // Ask before destructive POSTs marked with data-confirm (the server still requires the POST).
  document.addEventListener("submit", function (event) {
    var form = event.target;
    var message = form.getAttribute && form.getAttribute("data-confirm");
    if (message && !window.confirm(message)) {
      event.preventDefault();
    }
  });
  // Move focus to the first invalid field after a failed submit.
  document.addEventListener("DOMContentLoaded", function () {
    // A notice that came with the address (?saved=... after a save) is shown once: a reload, or the
    // address copied from the bar, does not repeat it.
    if (document.querySelector("[data-notice]") && window.history.replaceState) {
      var url = new URL(window.location.href);
      url.searchParams.delete("saved");
      window.history.replaceState(window.history.state, "", url.toString());
    }
    // Stacked tables (phones): label each cell with its column's heading, unless the page did.
    Array.prototype.forEach.call(document.querySelectorAll("table.table-stack"), function (table) {
      var headings = Array.prototype.map.call(table.querySelectorAll("thead th"), function (th) {
        return th.textContent.trim();
      });
      Array.prototype.forEach.call(table.querySelectorAll("tbody tr"), function (row) {
        Array.prototype.forEach.call(row.children, function (cell, index) {
          if (!cell.hasAttribute("data-label") && cell.tagName === "TD" && headings[index]) {
            cell.setAttribute("data-label", headings[index]);
          }
        });
      });
    });
    var invalid = document.querySelector("[aria-invalid='true']");
    if (invalid) {
      invalid.focus();
    }
  });
})();
