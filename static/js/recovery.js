// The shown-once recovery codes page: the Print button (hidden until this script runs,
// since it needs JavaScript). No inline script anywhere: the CSP forbids it.
(function () {
  "use strict";
  document.querySelectorAll("[data-print]").forEach(function (button) {
    button.hidden = false;
    button.addEventListener("click", function () { window.print(); });
  });
})();
