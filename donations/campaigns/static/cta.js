/* Donations call-to-action. Fetches the campaigns showing now (one cacheable JSON for every reader),
   chooses one for this page by its rules, a variant by a random id kept in this site's localStorage,
   and shows it inline, after the Nth paragraph, as a bottom banner or as an overlay, inside a Shadow DOM.
   Server text goes in as text only. No cookie, no third party, nothing about the reader leaves the
   browser: the counts name the campaign, the variant and the page. A reader who has given (the thank-you
   page links back with #donations-thanks=<frequency>) sees a thank-you instead of an inline ask. */
(function () {
  "use strict";
  var script = document.currentScript;
  if (!script || !script.parentNode || !window.fetch) return;
  var base = new URL(script.src, location.href);
  base = base.origin + base.pathname.replace(/\/embed\/v1\/cta\.js$/, "");
  var attr = function (name) { return script.getAttribute("data-" + name); };
  var DAY = 864e5, NOW = Date.now();
  var store = {
    get: function (key) { try { return JSON.parse(localStorage.getItem("donations:" + key)); } catch (e) { return null; } },
    set: function (key, value) { try { localStorage.setItem("donations:" + key, JSON.stringify(value)); } catch (e) { /* blocked */ } }
  };
  var mark = /[#&]donations-thanks=(\w+)/.exec(location.hash);
  if (mark) {
    store.set("gave", { at: NOW, frequency: mark[1] });
    history.replaceState(null, "", location.pathname + location.search);
  }
  var gave = store.get("gave");
  var thanked = !!gave && NOW - gave.at < (gave.frequency === "one_off" ? 30 : 400) * DAY;
  var lang = attr("locale") || document.documentElement.lang || "en";
  var primary = lang.toLowerCase().split(/[-_]/)[0];
  var meta = function (names) {
    for (var i = 0; i < names.length; i++) {
      var el = document.querySelector('meta[property="' + names[i] + '"], meta[name="' + names[i] + '"]');
      if (el && el.content) return el.content.trim();
    }
    return undefined;
  };
  var section = meta(["article:section"]);
  // The page as counted: no fragment, and of the query only where the reader came from (utm_*).
  var page = new URL(location.href);
  page.hash = "";
  Array.from(page.searchParams.keys()).forEach(function (k) { if (!/^utm_/i.test(k)) page.searchParams.delete(k); });
  page = page.href;

  function matches(c) {
    var r = c.rules;
    var glob = function (p) { return new RegExp("^" + p.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*").replace(/\?/g, ".") + "$"); };
    return (!r.sections.length || (!!section && r.sections.some(function (s) { return s.toLowerCase() === section.toLowerCase(); })))
      && (!r.url_patterns.length || r.url_patterns.some(function (p) { return glob(p).test(location.pathname); }))
      && (!r.languages.length || r.languages.indexOf(primary) >= 0);
  }
  function capped(c) {
    if (!c.cap) return false;
    var seen = (store.get("cap:" + c.slug) || []).filter(function (t) { return NOW - t < c.cap.days * DAY; });
    return seen.length >= c.cap.views;
  }
  // One random id per browser, never sent: it only turns into a number per campaign to pick a variant.
  function variantOf(c) {
    var chosen = store.get("variants") || {};
    var found = c.variants.filter(function (v) { return v.key === chosen[c.slug]; })[0];
    if (found) return found;
    var id = store.get("id");
    if (!id) { id = Math.random().toString(36).slice(2) + NOW.toString(36); store.set("id", id); }
    var h = 2166136261, text = id + ":" + c.slug;  // FNV-1a
    for (var i = 0; i < text.length; i++) { h ^= text.charCodeAt(i); h = Math.imul(h, 16777619) >>> 0; }
    var u = h / 4294967296, sum = 0;
    found = c.variants[c.variants.length - 1];
    for (var j = 0; j < c.variants.length; j++) {
      sum += c.variants[j].share;
      if (u < sum) { found = c.variants[j]; break; }
    }
    chosen[c.slug] = found.key;
    store.set("variants", chosen);
    return found;
  }
  function el(tag, props, children) {
    var node = document.createElement(tag);
    Object.keys(props || {}).forEach(function (k) {
      if (k === "text") node.textContent = props[k]; else node.setAttribute(k, props[k]);
    });
    (children || []).forEach(function (child) { if (child) node.appendChild(child); });
    return node;
  }
  function send(type, c, v) {
    var body = JSON.stringify({ type: type, campaign: c.slug, variant: v.key, url: page, section: section,
      author: meta(["author", "article:author"]), title: meta(["og:title"]) || document.title || undefined });
    var url = base + "/embed/v1/count";
    if (!(navigator.sendBeacon && navigator.sendBeacon(url, body))) {
      fetch(url, { method: "POST", body: body, keepalive: true, mode: "no-cors", credentials: "omit" }).catch(function () {});
    }
  }
  var CSS = ":host{all:initial;display:block}.ask{font:16px/1.5 system-ui,sans-serif;color:#1d1d1f;background:#fff;" +
    "border:1px solid #dcd8cf;border-top:4px solid #0b5cad;border-radius:8px;padding:1.25rem;margin:1.5rem 0;position:relative}" +
    "h2{font-size:1.3rem;margin:0 2rem .5rem 0}p{margin:0 0 1rem}fieldset{border:0;padding:0;margin:0 0 1rem;display:flex;flex-wrap:wrap;gap:.5rem}" +
    "legend{font-weight:600;margin-bottom:.4rem}label{display:inline-flex;gap:.35rem;align-items:center;border:1px solid #9a968c;border-radius:6px;padding:.35rem .75rem;cursor:pointer}" +
    "button{font:inherit;font-weight:600;background:#0b5cad;color:#fff;border:0;border-radius:6px;padding:.6rem 1.2rem;cursor:pointer}" +
    ".close{position:absolute;top:.5rem;right:.5rem;background:none;color:#1d1d1f;padding:.2rem .6rem;font-size:1.4rem}" +
    "a{margin-left:1rem;color:#0b5cad}progress{width:100%;height:.6rem;accent-color:#0b5cad}" +
    "button:focus-visible,label:focus-within,a:focus-visible{outline:3px solid #1d1d1f;outline-offset:2px}" +
    ".banner{position:fixed;left:0;right:0;bottom:0;z-index:2147483647;margin:0;border-radius:0;max-height:60vh;overflow:auto}" +
    "dialog{border:0;padding:0;max-width:36rem;width:calc(100% - 2rem);background:none}dialog .ask{margin:0}dialog::backdrop{background:rgba(0,0,0,.5)}";

  function render(data, c, v) {
    var labels = data.labels, currency = v.currency, presets = v.presets[v.default_frequency] || [];
    var params = function (extra) {
      var q = new URLSearchParams({ campaign: c.slug, variant: v.key, article_url: page, currency: currency, locale: data.locale });
      Object.keys(extra).forEach(function (k) { q.set(k, extra[k]); });
      return q;
    };
    var form = el("form", { method: "get", action: data.donate_url });
    params({ frequency: v.default_frequency }).forEach(function (value, name) {
      form.appendChild(el("input", { type: "hidden", name: name, value: value }));
    });
    var amounts = el("fieldset", {}, [el("legend", { text: labels.choose })]);
    presets.forEach(function (p, i) {
      var radio = el("input", { type: "radio", name: "amount", value: p.major });
      if (i === Math.min(1, presets.length - 1)) radio.checked = true;
      amounts.appendChild(el("label", {}, [radio, el("span", { text: p.label })]));
    });
    amounts.appendChild(el("label", {}, [el("input", { type: "radio", name: "amount", value: "other" }),
      el("span", { text: labels.other })]));
    form.appendChild(amounts);
    form.appendChild(el("button", { type: "submit", text: v.button_label }));
    if (v.default_frequency === "one_off") {
      form.appendChild(el("a", { href: data.donate_url + "?" + params({ frequency: "monthly" }), text: labels.monthly }));
    }
    var goal = null;
    if (c.goal) {
      goal = el("div", {}, [el("p", { id: "dn-goal", text: c.goal.label }),
        el("progress", { max: "100", value: String(c.goal.percent), "aria-labelledby": "dn-goal" })]);
    }
    return el("section", { "class": "ask", "aria-labelledby": "dn-title", lang: data.locale.replace("_", "-") }, [
      el("h2", { id: "dn-title", text: v.headline }), el("p", { text: v.body }), goal, form]);
  }

  function show(data, c, v) {
    var placement = v.placement, host = el("div", { "data-donations-ask": c.slug, "data-variant": v.key });
    var root = host.attachShadow({ mode: "open" });
    try {
      var sheet = new CSSStyleSheet();
      sheet.replaceSync(CSS);
      root.adoptedStyleSheets = [sheet];
    } catch (e) { root.appendChild(el("style", { text: CSS })); }
    var counted = false, dismissed = false;
    var countView = function () {  // once per page view, for the cap
      if (counted || !c.cap) return;
      counted = true;
      var seen = (store.get("cap:" + c.slug) || []).filter(function (t) { return NOW - t < c.cap.days * DAY; });
      seen.push(Date.now());
      store.set("cap:" + c.slug, seen);
    };
    var place = function (node) {
      root.appendChild(node);
      var nth = +(v.after_paragraph || attr("after-paragraph") || 0);
      var container = nth && attr("selector") && document.querySelector(attr("selector"));
      var paragraphs = container ? container.querySelectorAll(":scope > p") : [];
      if (container && !paragraphs.length) paragraphs = container.querySelectorAll("p");
      var after = paragraphs[nth - 1];
      if (after) after.parentNode.insertBefore(host, after.nextSibling); else script.parentNode.insertBefore(host, script);
    };
    if (thanked) {
      // A reader who gave is thanked where an inline ask would stand, and not interrupted otherwise.
      if (placement === "inline") place(el("section", { "class": "ask", "aria-label": data.labels.thanks || "Thank you", lang: data.locale.replace("_", "-") }, [el("p", { text: v.thank_you })]));
      return;
    }
    var ask = render(data, c, v), focusBack = document.activeElement;
    var dismiss = function () {
      if (dismissed) return;
      dismissed = true;
      countView();
      host.remove();
      if (focusBack && focusBack.focus) focusBack.focus();
    };
    ask.querySelector("form").addEventListener("submit", function () { send("click", c, v); });
    var monthly = ask.querySelector("a");
    if (monthly) monthly.addEventListener("click", function () { send("click", c, v); });
    var closer = el("button", { type: "button", "class": "close", "aria-label": data.labels.close, text: "\u00d7" });
    if (placement === "overlay" && typeof HTMLDialogElement === "function") {
      var dialog = el("dialog", { "aria-labelledby": "dn-title" }, [ask]);
      ask.insertBefore(closer, ask.firstChild);
      closer.addEventListener("click", function () { dialog.close(); });
      dialog.addEventListener("close", dismiss);  // Escape closes a modal dialog too
      root.appendChild(dialog);
      document.body.appendChild(host);
      dialog.showModal();
      closer.focus();
    } else if (placement === "banner") {
      ask.classList.add("banner");
      ask.insertBefore(closer, ask.firstChild);
      closer.addEventListener("click", dismiss);
      // Like the overlay, the banner closes with Escape while the focus is in it.
      root.addEventListener("keydown", function (e) { if (e.key === "Escape") dismiss(); });
      root.appendChild(ask);
      document.body.appendChild(host);
    } else {
      place(ask);
    }
    // An impression is an ask half in view, once per page view.
    if (window.IntersectionObserver) {
      var observer = new IntersectionObserver(function (entries) {
        if (entries.some(function (e) { return e.isIntersecting && e.intersectionRatio >= 0.5; })) {
          observer.disconnect();
          countView();
          send("impression", c, v);
        }
      }, { threshold: 0.5 });
      observer.observe(ask);
    }
  }

  var query = new URLSearchParams({ locale: lang });
  if (attr("currency")) query.set("currency", attr("currency"));
  fetch(base + "/embed/v1/campaigns.json?" + query, { credentials: "omit" })
    .then(function (response) {
      if (!response.ok) throw new Error("campaigns unavailable: " + response.status);
      return response.json();
    })
    .then(function (data) {
      var pinned = attr("campaign");
      // A pinned campaign skips the page rules (the publisher chose it for this page), not the reader's.
      var chosen = data.campaigns.filter(function (c) {
        return (pinned ? c.slug === pinned : matches(c)) && !(thanked && c.rules.hide_from_supporters) && !capped(c);
      })[0];  // the server lists them by priority
      if (chosen) show(data, chosen, variantOf(chosen));
    })
    .catch(function () { /* no ask is better than a broken page */ });
})();
