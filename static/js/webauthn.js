// Security keys and passkeys (WebAuthn): the browser half of adding a key (the Security Key
// tab) and of using one (signing in, and a password reset link's step before the new
// password). The server makes the options and checks the answers (services/webauthn_keys.py).
// Markup: an element with data-webauthn="register" or "authenticate", data-options-url (POST:
// the options JSON) and data-verify-url (POST: the credential, and `trust` when a "trust"
// checkbox is inside; answers {"redirect": url} or {"error": message}), a
// [data-webauthn-start] button and a [data-webauthn-status] element.
// No inline script anywhere: the CSP forbids it. Without JavaScript, or in a browser without
// WebAuthn, the pages say keys need it.
(function () {
  "use strict";

  var supported = typeof window.PublicKeyCredential === "function" &&
    !!(navigator.credentials && navigator.credentials.create);

  function toBytes(base64url) {
    var base64 = base64url.replace(/-/g, "+").replace(/_/g, "/");
    while (base64.length % 4) { base64 += "="; }
    var text = atob(base64);
    var bytes = new Uint8Array(text.length);
    for (var i = 0; i < text.length; i++) { bytes[i] = text.charCodeAt(i); }
    return bytes.buffer;
  }

  function toBase64url(buffer) {
    var bytes = new Uint8Array(buffer);
    var text = "";
    for (var i = 0; i < bytes.length; i++) { text += String.fromCharCode(bytes[i]); }
    return btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function csrfToken() {
    try {
      return JSON.parse(document.body.getAttribute("hx-headers") || "{}")["X-CSRFToken"] || "";
    } catch (error) {
      return "";
    }
  }

  function post(url, body) {
    return fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrfToken() },
      body: JSON.stringify(body || {})
    }).then(function (response) {
      if (response.redirected) {
        // Sudo mode (the password again) or a sign-in that ended: go where the server says.
        window.location.assign(response.url);
        return new Promise(function () {});
      }
      return response.json().catch(function () { return {}; }).then(function (data) {
        if (!response.ok) {
          throw new Error(data.error || words("failed", "Something went wrong. Reload the page and try again."));
        }
        return data;
      });
    });
  }

  function creationOptions(options) {
    options.challenge = toBytes(options.challenge);
    options.user.id = toBytes(options.user.id);
    (options.excludeCredentials || []).forEach(function (each) { each.id = toBytes(each.id); });
    return options;
  }

  function requestOptions(options) {
    options.challenge = toBytes(options.challenge);
    (options.allowCredentials || []).forEach(function (each) { each.id = toBytes(each.id); });
    return options;
  }

  function registrationJSON(credential) {
    var response = credential.response;
    return {
      id: credential.id,
      rawId: toBase64url(credential.rawId),
      type: credential.type,
      authenticatorAttachment: credential.authenticatorAttachment || undefined,
      clientExtensionResults: credential.getClientExtensionResults ? credential.getClientExtensionResults() : {},
      response: {
        clientDataJSON: toBase64url(response.clientDataJSON),
        attestationObject: toBase64url(response.attestationObject),
        transports: response.getTransports ? response.getTransports() : []
      }
    };
  }

  function assertionJSON(credential) {
    var response = credential.response;
    return {
      id: credential.id,
      rawId: toBase64url(credential.rawId),
      type: credential.type,
      authenticatorAttachment: credential.authenticatorAttachment || undefined,
      clientExtensionResults: credential.getClientExtensionResults ? credential.getClientExtensionResults() : {},
      response: {
        clientDataJSON: toBase64url(response.clientDataJSON),
        authenticatorData: toBase64url(response.authenticatorData),
        signature: toBase64url(response.signature),
        userHandle: response.userHandle ? toBase64url(response.userHandle) : undefined
      }
    };
  }

  // A message in the page's language (base.html's data-say-* on <body>), else `english`.
  function words(name, english) {
    return (document.body && document.body.getAttribute("data-say-" + name)) || english;
  }

  function say(root, message) {
    var status = root.querySelector("[data-webauthn-status]");
    if (status) { status.textContent = message; }
  }

  function browserMessage(error) {
    if (error && error.name === "NotAllowedError") {
      return words("key-cancelled", "The security key request was cancelled or timed out. Try again.");
    }
    if (error && error.name === "InvalidStateError") {
      return words("key-added-already", "That security key is already added to your account.");
    }
    if (error && error.name === "SecurityError") {
      return words("key-refused-here", "This browser refused to use security keys on this address.");
    }
    return (error && error.message) || words("key-failed", "The security key didn't work. Try again.");
  }

  function register(root, button) {
    var nameField = root.querySelector("input[name='name']");
    var name = nameField ? nameField.value.trim() : "";
    if (!name) {
      say(root, root.getAttribute("data-say-key-name") ||
        "Give this security key a name, like “Blue USB key”.");
      if (nameField) { nameField.setAttribute("aria-invalid", "true"); nameField.focus(); }
      return;
    }
    if (nameField) { nameField.removeAttribute("aria-invalid"); }
    button.disabled = true;
    say(root, words("key-follow", "Follow your browser's instructions to use your security key…"));
    post(root.getAttribute("data-options-url"))
      .then(function (options) {
        return navigator.credentials.create({ publicKey: creationOptions(options) });
      })
      .then(function (credential) {
        return post(root.getAttribute("data-verify-url"), {
          credential: registrationJSON(credential), name: name
        });
      })
      .then(function (data) { window.location.assign(data.redirect); })
      .catch(function (error) {
        button.disabled = false;
        say(root, browserMessage(error));
      });
  }

  function authenticate(root, button) {
    button.disabled = true;
    say(root, words("key-follow", "Follow your browser's instructions to use your security key…"));
    post(root.getAttribute("data-options-url"))
      .then(function (options) {
        return navigator.credentials.get({ publicKey: requestOptions(options) });
      })
      .then(function (credential) {
        var body = { credential: assertionJSON(credential) };
        // "Don't ask again on this device", when the step offers it.
        var trust = root.querySelector("input[name='trust']");
        if (trust) { body.trust = trust.checked; }
        return post(root.getAttribute("data-verify-url"), body);
      })
      .then(function (data) { window.location.assign(data.redirect); })
      .catch(function (error) {
        button.disabled = false;
        say(root, browserMessage(error));
      });
  }

  function enable(scope) {
    if (!supported) { return; }
    scope.querySelectorAll("[data-webauthn]").forEach(function (root) {
      root.querySelectorAll("[data-webauthn-nojs]").forEach(function (each) { each.hidden = true; });
      root.querySelectorAll("[data-webauthn-ready]").forEach(function (each) { each.hidden = false; });
    });
  }

  function run(root, button) {
    if (root.getAttribute("data-webauthn") === "register") { register(root, button); }
    else { authenticate(root, button); }
  }

  function start(event) {
    var button = event.target.closest ? event.target.closest("[data-webauthn-start]") : null;
    var root = button ? button.closest("[data-webauthn]") : null;
    if (!root || !supported) { return; }
    event.preventDefault();
    run(root, button);
  }

  document.addEventListener("click", start);
  // Enter in a form inside (the key's name field) submits it: run the ceremony instead.
  document.addEventListener("submit", function (event) {
    var root = event.target.closest ? event.target.closest("[data-webauthn]") : null;
    if (!root) { return; }
    event.preventDefault();
    var button = root.querySelector("[data-webauthn-start]");
    if (button && !button.disabled && supported) { run(root, button); }
  });

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", function () { enable(document); });
  } else {
    enable(document);
  }
  // Parts swapped in by htmx (the Security Key tab, the verify component).
  document.addEventListener("htmx:load", function (event) {
    enable(event.detail.elt.parentNode || document);
  });
})();
