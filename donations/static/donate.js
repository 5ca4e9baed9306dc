// The donation form (/donate). Loaded from the page's own origin (CSP script-src 'self'); the form works without it.
// 1. "Other amount" and the amount radios agree: typing in (or clicking into) the box ticks "Other", and choosing
//    a preset empties the box, so the amount charged is always the one the reader sees chosen. (Without this
//    script the server refuses a preset together with a different typed amount and asks the reader to choose.)
// 2. The frequency and currency choices are links that load the page again; what the reader typed as email and
//    name is kept for that one reload in this tab's sessionStorage, and put back into the empty fields.
(function () {
  "use strict";
  var form = document.querySelector("form.donate");
  if (!form) { return; }

  var other = form.querySelector('input[name="amount"][value="other"]');
  var box = form.querySelector('input[name="custom_amount"]');
  if (other && box) {
    var chooseOther = function () {
      if (!other.checked) { other.checked = true; }
    };
    // Typing, or clicking into the box, is choosing it. Focus alone is not: a keyboard user tabbing from the
    // amounts to the email field passes through the box and keeps their preset (and the page's own autofocus,
    // showing an error, decides nothing either).
    box.addEventListener("input", chooseOther);
    box.addEventListener("click", chooseOther);
    Array.prototype.forEach.call(form.querySelectorAll('input[name="amount"]'), function (radio) {
      if (radio === other) { return; }
      radio.addEventListener("change", function () {
        if (radio.checked) { box.value = ""; }
      });
    });
  }

  var KEY = "donations.donate.typed";
  var FIELDS = ["email", "name"];
  try {
    var saved = JSON.parse(window.sessionStorage.getItem(KEY) || "null");
    window.sessionStorage.removeItem(KEY);
    if (saved && typeof saved === "object") {
      FIELDS.forEach(function (name) {
        var input = form.elements.namedItem(name);
        if (input && !input.value && typeof saved[name] === "string") { input.value = saved[name]; }
      });
    }
  } catch (e) { /* storage refused (private mode, settings): the switch still works, the fields start empty */ }

  Array.prototype.forEach.call(form.querySelectorAll("#frequency-choice a, #currency-choice a"), function (link) {
    link.addEventListener("click", function () {
      var typed = {};
      FIELDS.forEach(function (name) {
        var input = form.elements.namedItem(name);
        typed[name] = input ? input.value : "";
      });
      try { window.sessionStorage.setItem(KEY, JSON.stringify(typed)); } catch (e) { /* as above */ }
    });
  });
})();
