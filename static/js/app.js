// TwoStep's small progressive enhancements. Everything works without this file.
(function () {
  "use strict";

  // After a swap, put the focus where the next step is, so keyboard and screen-reader users
  // are not sent back to the top of the page:
  // 1. a tab that was just chosen keeps the focus (the WAI-ARIA tabs pattern);
  // 2. else a freshly shown code box ([data-autofocus]) or the first field with an error;
  // 3. else the control that had the focus, if the swap replaced it (the 2SV switch).
  var focusedBefore = null;

  document.addEventListener("htmx:beforeSwap", function () {
    var active = document.activeElement;
    focusedBefore = active && active.id ? active.id : null;
  });

  function swappedRoot(target) {
    if (target && target.isConnected) { return target; }
    // An outerHTML swap replaced the target: its successor carries the same id.
    return (target && target.id && document.getElementById(target.id)) || null;
  }

  document.addEventListener("htmx:afterSettle", function (event) {
    var detail = event.detail || {};
    var root = swappedRoot(detail.target);
    var trigger = detail.requestConfig ? detail.requestConfig.elt : null;
    var next = null;
    if (trigger && trigger.getAttribute && trigger.getAttribute("role") === "tab" && trigger.id) {
      next = document.getElementById(trigger.id);
    }
    if (!next && root) {
      next = root.querySelector("[data-autofocus]") || root.querySelector("[aria-invalid='true']");
    }
    if (!next && focusedBefore && (!document.activeElement || document.activeElement === document.body)) {
      // The focused control was swapped out: focus its successor (same id).
      next = document.getElementById(focusedBefore);
    }
    focusedBefore = null;
    if (next && next !== document.activeElement && typeof next.focus === "function") {
      next.focus();
    }
  });

  // Tabs from the keyboard (WAI-ARIA tabs pattern): only the selected tab is in the Tab order;
  // the Left and Right arrows, Home and End move between tabs; Enter or Space opens one.
  function rovingTabs(root) {
    root.querySelectorAll("[role='tablist']").forEach(function (list) {
      list.querySelectorAll("[role='tab']").forEach(function (tab) {
        tab.setAttribute("tabindex", tab.getAttribute("aria-selected") === "true" ? "0" : "-1");
      });
    });
  }

  rovingTabs(document);
  document.addEventListener("htmx:load", function (event) {
    rovingTabs(event.detail.elt.parentNode || document);
  });

  document.addEventListener("keydown", function (event) {
    var tab = event.target.closest ? event.target.closest("[role='tab']") : null;
    var list = tab ? tab.closest("[role='tablist']") : null;
    if (!list || event.altKey || event.ctrlKey || event.metaKey) { return; }
    var tabs = Array.prototype.slice.call(list.querySelectorAll("[role='tab']"));
    var index = tabs.indexOf(tab);
    var next = null;
    if (event.key === "ArrowRight") { next = tabs[(index + 1) % tabs.length]; }
    else if (event.key === "ArrowLeft") { next = tabs[(index - 1 + tabs.length) % tabs.length]; }
    else if (event.key === "Home") { next = tabs[0]; }
    else if (event.key === "End") { next = tabs[tabs.length - 1]; }
    else if (event.key === " ") { event.preventDefault(); tab.click(); return; }
    if (next) {
      event.preventDefault();
      tabs.forEach(function (each) { each.setAttribute("tabindex", each === next ? "0" : "-1"); });
      next.focus();
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
