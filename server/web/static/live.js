// A queued or running gate's page follows it: poll the API for its status
// and progress, and reload once it has a verdict.
(function () {
  var el = document.getElementById("status");
  if (!el) return;
  var status = el.getAttribute("data-status");
  if (status !== "queued" && status !== "running") return;
  var id = el.getAttribute("data-run");
  var progress = document.getElementById("progress");
  function poll() {
    fetch("/api/v1/runs/" + id, { headers: { Accept: "application/json" } })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (body) {
        if (!body || !body.run) return;
        if (body.run.status !== status) { window.location.reload(); return; }
        if (progress && body.run.progress) progress.textContent = body.run.progress;
      })
      .catch(function () {})
      .finally(function () { setTimeout(poll, 2000); });
  }
  setTimeout(poll, 2000);
})();
