// Rapport form embed: renders a hosted form into a page of another site, posts the answers as JSON, shows the
// errors per field and then the thank-you (or follows the redirect). No dependencies. The server calls this
// function with the form's configuration: its markup (rendered and escaped on the server), where to post, and the
// messages in the visitor's language.
(function (config) {
  "use strict";
  var script = document.currentScript;
  var ANONYMOUS_ID_KEY = "rapport_anonymous_id";

  var target = document.getElementById("rapport-form-" + config.formId);
  if (!target) {
    target = document.createElement("div");
    target.id = "rapport-form-" + config.formId;
    if (script && script.parentNode) {
      script.parentNode.insertBefore(target, script);
    } else {
      document.body.appendChild(target);
    }
  }
  if (!document.getElementById("rapport-form-style")) {
    var style = document.createElement("style");
    style.id = "rapport-form-style";
    style.textContent = config.style;
    document.head.appendChild(style);
  }
  target.innerHTML = config.html;
  var form = target.querySelector("form");
  if (!form) {
    return;
  }
  var alertBox = form.querySelector(".rapport-form-alert");

  // The website tracker's ids: from the tracker when it is loaded on this page, else from its first-party cookie
  // or its copy in localStorage, so that the visitor's anonymous history joins the contact.
  var readCookie = function (name) {
    var cookies = document.cookie ? document.cookie.split("; ") : [];
    for (var i = 0; i < cookies.length; i++) {
      var separator = cookies[i].indexOf("=");
      if (cookies[i].slice(0, separator) === name) {
        try {
          return decodeURIComponent(cookies[i].slice(separator + 1));
        } catch (error) {
          return null;
        }
      }
    }
    return null;
  };
  var visitor = function () {
    var ids = { anonymousId: null, userId: null };
    try {
      if (window.rapport && typeof window.rapport.user === "function") {
        var user = window.rapport.user();
        ids.anonymousId = user.anonymousId || null;
        ids.userId = user.userId || null;
      }
    } catch (error) {
      // A page's own `rapport` that is not ours.
    }
    if (!ids.anonymousId) {
      try {
        ids.anonymousId = readCookie(ANONYMOUS_ID_KEY) || window.localStorage.getItem(ANONYMOUS_ID_KEY);
      } catch (error) {
        ids.anonymousId = readCookie(ANONYMOUS_ID_KEY);
      }
    }
    return ids;
  };

  var showAlert = function (text) {
    alertBox.textContent = text;
    alertBox.hidden = !text;
  };
  var clearErrors = function () {
    var errors = form.querySelectorAll(".rapport-form-error");
    for (var i = 0; i < errors.length; i++) {
      errors[i].textContent = "";
      errors[i].hidden = true;
    }
    var invalid = form.querySelectorAll("[aria-invalid]");
    for (var j = 0; j < invalid.length; j++) {
      invalid[j].removeAttribute("aria-invalid");
    }
    showAlert("");
  };
  var showFieldError = function (key, text) {
    var id = "rapport-" + config.formId + "-" + key;
    var error = document.getElementById(id + "-error");
    if (!error) {
      return false;
    }
    error.textContent = text;
    error.hidden = false;
    var inputs = form.querySelectorAll("[name='" + key.replace(/[^a-z0-9_]/g, "") + "']");
    for (var i = 0; i < inputs.length; i++) {
      inputs[i].setAttribute("aria-invalid", "true");
    }
    return true;
  };

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    clearErrors();
    var answers = {};
    var body = { answers: answers };
    var elements = form.elements;
    for (var i = 0; i < elements.length; i++) {
      var element = elements[i];
      if (!element.name || element.disabled) {
        continue;
      }
      if ((element.type === "checkbox" || element.type === "radio") && !element.checked) {
        continue;
      }
      if (element.name === "_token") {
        body.token = element.value;
      } else if (element.name === "_hp") {
        body.hp = element.value;
      } else if (element.name === "_lang") {
        body.lang = element.value;
      } else if (element.name === "_referrer") {
        continue;
      } else if (element.type === "checkbox" && element.value !== "true") {
        (answers[element.name] = answers[element.name] || []).push(element.value);
      } else {
        answers[element.name] = element.value;
      }
    }
    var ids = visitor();
    body.anonymous_id = ids.anonymousId;
    body.user_id = ids.userId;
    body.page_url = location.href;
    body.referrer = document.referrer || null;
    var button = form.querySelector("button[type=submit]");
    button.disabled = true;
    var finish = function () {
      button.disabled = false;
    };
    fetch(config.action, {
      method: "POST",
      mode: "cors",
      credentials: "omit",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    })
      .then(function (response) {
        return response
          .json()
          .catch(function () {
            return {};
          })
          .then(function (answer) {
            return { status: response.status, answer: answer };
          });
      })
      .then(function (result) {
        var answer = result.answer || {};
        if (result.status === 200 && answer.ok) {
          if (answer.redirect) {
            window.location.href = answer.redirect;
            return;
          }
          var done = document.createElement("div");
          done.className = "rapport-form-done";
          done.setAttribute("role", "status");
          done.textContent = answer.message || "";
          target.innerHTML = "";
          target.appendChild(done);
          return;
        }
        finish();
        var error = answer.error || {};
        var details = error.details || {};
        if (details.token) {
          var token = form.querySelector("input[name=_token]");
          if (token) {
            token.value = details.token;
          }
        }
        var fields = details.fields || [];
        var general = [];
        for (var f = 0; f < fields.length; f++) {
          if (!fields[f].key || !showFieldError(fields[f].key, fields[f].message)) {
            general.push(fields[f].message);
          }
        }
        if (fields.length) {
          showAlert(config.messages.invalid + (general.length ? " " + general.join(" ") : ""));
        } else {
          showAlert(error.message || config.messages.failed);
        }
      })
      .catch(function () {
        finish();
        showAlert(config.messages.failed);
      });
  });
})
