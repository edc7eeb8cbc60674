// TwoStep's small progressive enhancements. Everything works without this file.
(function () {
  "use strict";

  // After a swap, put the focus where the next step is, so keyboard and screen-reader users
  // are not sent back to the top of the page:
  // 1. the element the trigger names in data-focus-after (Cancel -> the row's Delete);
  // 2. a tab that was just chosen keeps the focus (the WAI-ARIA tabs pattern);
  // 3. else what the swap brought in marked [data-autofocus] (a code box, a message, a
  //    confirmation, the first choice of the picker) or the first field with an error;
  // 4. else the control that had the focus, if the swap replaced it (the 2SV switch).
  var focusedBefore = null;
  var focusAfter = null;

  document.addEventListener("htmx:beforeSwap", function (event) {
    var active = document.activeElement;
    focusedBefore = active && active.id ? active.id : null;
    var trigger = event.detail && event.detail.requestConfig ? event.detail.requestConfig.elt : null;
    focusAfter = trigger && trigger.getAttribute ? trigger.getAttribute("data-focus-after") : null;
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
    var next = focusAfter ? document.getElementById(focusAfter) : null;
    focusAfter = null;
    if (!next && trigger && trigger.getAttribute && trigger.getAttribute("role") === "tab" && trigger.id) {
      next = document.getElementById(trigger.id);
      var active = document.activeElement;
      if (next && active && active !== next && active.getAttribute && active.getAttribute("role") === "tab") {
        // The person moved on with the arrows while the tab was loading (htmx then keeps the
        // focus on the tab they reached): leave the focus where they put it.
        focusedBefore = null;
        return;
      }
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

  // A link that looks and acts as a button (role=button: it opens the next step with a GET)
  // also answers the Space key, as a button does.
  document.addEventListener("keydown", function (event) {
    var target = event.target;
    if (event.key === " " && target.matches && target.matches("a[role='button']")) {
      event.preventDefault();
      target.click();
    }
  });

  // A message in the page's language (base.html's data-say-* on <body>), else `english`.
  function say(name, english) {
    return (document.body && document.body.getAttribute("data-say-" + name)) || english;
  }

  // Errors htmx does not swap (403, 404, 500...) are shown in a polite toast.
  document.addEventListener("htmx:responseError", function (event) {
    var toast = document.getElementById("toast");
    if (!toast) { return; }
    var status = event.detail.xhr ? event.detail.xhr.status : 0;
    toast.textContent = status === 403 ? say("forbidden", "You can't do that.") :
      status === 404 ? say("gone", "That is no longer there. Reload the page.") :
      say("failed", "Something went wrong. Reload the page and try again.");
    toast.hidden = false;
    window.setTimeout(function () { toast.hidden = true; }, 6000);
  });

  document.addEventListener("htmx:sendError", function () {
    var toast = document.getElementById("toast");
    if (!toast) { return; }
    toast.textContent = say("offline", "We couldn't reach the server. Check your connection.");
    toast.hidden = false;
  });

  // Confirmation for buttons that carry data-confirm (the no-JS path has its own page).
  document.addEventListener("htmx:confirm", function (event) {
    var question = event.target.getAttribute("data-confirm");
    if (question && !window.confirm(question)) {
      event.preventDefault();
    }
  });

  // Copy buttons ([data-copy] names the element whose text is copied; without JavaScript
  // they stay hidden and the text stays selectable). The words said afterwards are the
  // template's, in data-copied and data-copy-failed of the matching [data-copy-status].
  function showCopyButtons(root) {
    root.querySelectorAll("[data-copy][hidden]").forEach(function (button) {
      if (navigator.clipboard) { button.hidden = false; }
    });
  }

  showCopyButtons(document);
  document.addEventListener("htmx:load", function (event) { showCopyButtons(event.detail.elt); });

  document.addEventListener("click", function (event) {
    var button = event.target.closest ? event.target.closest("[data-copy]") : null;
    if (!button) { return; }
    var id = button.getAttribute("data-copy");
    var source = document.getElementById(id);
    var status = document.querySelector("[data-copy-status='" + id + "']");
    if (!source) { return; }
    function say(attribute) {
      if (status) { status.textContent = status.getAttribute(attribute) || ""; }
    }
    navigator.clipboard.writeText(source.textContent.replace(/\s+/g, "")).then(
      function () { say("data-copied"); },
      function () { say("data-copy-failed"); }
    );
  });

  // The profile menu is a disclosure: Escape closes it and gives the focus back to its button.
  document.addEventListener("keydown", function (event) {
    if (event.key !== "Escape") { return; }
    document.querySelectorAll("details.profile-menu[open]").forEach(function (menu) {
      menu.removeAttribute("open");
      if (menu.contains(document.activeElement)) { menu.querySelector("summary").focus(); }
    });
  });

  // Close the profile menu when clicking elsewhere.
  document.addEventListener("click", function (event) {
    document.querySelectorAll("details.profile-menu[open]").forEach(function (menu) {
      if (!menu.contains(event.target)) { menu.removeAttribute("open"); }
    });
  });
})();
