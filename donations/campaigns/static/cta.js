/* Donations call-to-action. Renders the ask where this tag stands, inside a Shadow DOM so that
   neither the article's CSS nor ours leaks across. Talks only to the server it came from.
   A reader who has given (the thank-you page links back with #donations-thanks=<frequency>) sees a
   thank-you instead, remembered in this site's own localStorage: no cookie, no third party. */
(function () {
  "use strict";
  var script = document.currentScript;
  if (!script || !script.parentNode) return;
  var src = new URL(script.src, location.href);
  var base = src.origin + src.pathname.replace(/\/embed\/v1\/cta\.js$/, "");
  var slug = script.getAttribute("data-campaign") || "default";
  var KEY = "donations:gave", DAY = 864e5;
  var gave = null;
  try {
    var mark = /[#&]donations-thanks=(\w+)/.exec(location.hash);
    if (mark) {
      localStorage.setItem(KEY, JSON.stringify({ at: Date.now(), frequency: mark[1] }));
      history.replaceState(null, "", location.pathname + location.search);
    }
    gave = JSON.parse(localStorage.getItem(KEY) || "null");
  } catch (e) { /* storage blocked: show the ask */ }
  var thanked = gave && Date.now() - gave.at < (gave.frequency === "one_off" ? 30 : 400) * DAY;
  var host = document.createElement("div");
  host.setAttribute("data-donations-ask", slug);
  script.parentNode.insertBefore(host, script);
  var root = host.attachShadow ? host.attachShadow({ mode: "open" }) : host;
  var query = new URLSearchParams({ article_url: location.href.split("#")[0] });
  var lang = script.getAttribute("data-locale") || document.documentElement.lang;
  if (lang) query.set("locale", lang);
  var currency = script.getAttribute("data-currency");
  if (currency) query.set("currency", currency);
  if (thanked) query.set("thanks", "1");
  fetch(base + "/embed/cta/" + encodeURIComponent(slug) + ".html?" + query, { credentials: "omit" })
    .then(function (response) {
      if (!response.ok) throw new Error("ask unavailable: " + response.status);
      return response.text();
    })
    .then(function (html) { root.innerHTML = html; })
    .catch(function () { host.remove(); });
})();
