// The export job page: poll the job's status (same origin) and move the progress bar until it is done or failed.
(function () {
  "use strict";
  var section = document.getElementById("export-job");
  if (!section) { return; }
  var bar = document.getElementById("export-progress");
  var status = document.getElementById("export-status");
  var count = document.getElementById("export-count");
  var error = document.getElementById("export-error");
  var download = document.getElementById("export-download");

  function show(state) {
    status.textContent = state.status;
    if (state.rows_total !== null) {
      bar.max = Math.max(state.rows_total, 1);
      bar.value = state.rows_done;
      count.textContent = state.rows_done + " of " + state.rows_total + " rows";
    }
    if (state.error) {
      error.textContent = "The export failed: " + state.error;
      error.hidden = false;
    }
    if (state.download_url) {
      download.querySelector("a").href = state.download_url;
      download.hidden = false;
    }
    return state.status === "queued" || state.status === "running";
  }

  function poll() {
    fetch(section.dataset.statusUrl, {credentials: "same-origin", headers: {"Accept": "application/json"}})
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (state) {
        if (state && show(state)) { window.setTimeout(poll, 2000); }
      })
      .catch(function () { window.setTimeout(poll, 10000); });
  }

  if (section.dataset.status === "queued" || section.dataset.status === "running") { poll(); }
})();
