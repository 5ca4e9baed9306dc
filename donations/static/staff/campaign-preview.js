/* Campaign editor: the preview follows the copy as it is typed. Text only (textContent), so staff
   text can never become markup; preset amounts are previewed with the Preview button (formatted on the server). */
(function () {
  "use strict";
  var form = document.querySelector("form[data-preview]");
  var preview = document.querySelector(".preview");
  if (!form || !preview) return;
  var publication = form.getAttribute("data-publication") || "";
  var targets = {
    headline: ".dn-headline",
    body: ".dn-body",
    button_label: ".dn-button"
  };
  Object.keys(targets).forEach(function (name) {
    var field = form.elements[name];
    var target = preview.querySelector(targets[name]);
    if (!field || !target) return;
    field.addEventListener("input", function () {
      target.textContent = name === "body" ? field.value.split("{publication}").join(publication) : field.value;
    });
  });
})();
