// TwoStep's small progressive enhancements. Everything works without this file.
(function () {
  "use strict";

  // Move focus to a freshly swapped-in code box or error, so keyboard and screen-reader
  // users land where the next step is.
  function focusFirst(root) {
    var target = root.querySelector("[data-autofocus]") ||
      root.querySelector("[aria-invalid='true']");
    if (target && typeof target.focus === "function") {
      target.focus();
    }
  }

  document.addEventListener("htmx:afterSwap", function (event) {
    var root = event.detail.target;
    if (root && root.isConnected) {
      focusFirst(root);
    } else if (event.detail.elt) {
      focusFirst(document);
    }
  });

  // Errors htmx does not swap (403, 404, 500...) are shown in a polite toast.
  document.addEventListener("htmx:responseError", function (event) {
    var toast = document.getElementById("toast");
    if (!toast) { return; }
    var status = event.detail.xhr ? event.detail.xhr.status : 0;
    toast.textContent = status === 403 ? "You can't do that." :
      status === 404 ? "That is no longer there. Reload the page." :
      "Something went wrong. Reload the page and try again.";
    toast.hidden = false;
    window.setTimeout(function () { toast.hidden = true; }, 6000);
  });

  document.addEventListener("htmx:sendError", function () {
    var toast = document.getElementById("toast");
    if (!toast) { return; }
    toast.textContent = "We couldn't reach the server. Check your connection.";
    toast.hidden = false;
  });

  // Confirmation for buttons that carry data-confirm (the no-JS path has its own page).
  document.addEventListener("htmx:confirm", function (event) {
    var question = event.target.getAttribute("data-confirm");
    if (question && !window.confirm(question)) {
      event.preventDefault();
    }
  });

  // Close the profile menu when clicking elsewhere.
  document.addEventListener("click", function (event) {
    document.querySelectorAll("details.profile-menu[open]").forEach(function (menu) {
      if (!menu.contains(event.target)) { menu.removeAttribute("open"); }
    });
  });
})();
