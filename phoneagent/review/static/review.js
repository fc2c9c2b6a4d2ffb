// Call review pages: a turn's time button seeks the recording; the call list's rows refresh while calls
// are in progress. The pages work without this script (links, forms, native audio controls).
(function () {
  "use strict";

  // ---- one call: play the recording from a turn, and show which turn is playing --------------------
  var player = document.getElementById("player");
  if (player) {
    var turns = Array.prototype.slice.call(document.querySelectorAll(".turn[data-offset]"))
      .filter(function (li) { return li.dataset.offset !== ""; });

    document.addEventListener("click", function (ev) {
      var button = ev.target.closest("button.seek[data-offset]");
      if (!button) return;
      // before the metadata is loaded, this sets where playback will start (HTML media spec)
      player.currentTime = parseFloat(button.dataset.offset);
      var playing = player.play();
      if (playing && playing.catch) playing.catch(function () { /* no audio output: seeking is enough */ });
    });

    player.addEventListener("timeupdate", function () {
      var now = player.currentTime;
      var current = null;
      turns.forEach(function (li) { if (parseFloat(li.dataset.offset) <= now + 0.05) current = li; });
      turns.forEach(function (li) {
        li.classList.toggle("playing", li === current);
        if (li === current) li.setAttribute("aria-current", "true"); else li.removeAttribute("aria-current");
      });
    });
  }

  // ---- the call list: rows refresh every few seconds while the page is visible ---------------------
  var table = document.querySelector("table[data-live-src]");
  if (!table) return;
  var INTERVAL_MS = 5000;
  var tbody = table.tBodies[0];
  var status = document.getElementById("live-status");
  var src = table.dataset.liveSrc;
  var timer = null;
  var inflight = null;
  var stopped = false;

  function states(root) {
    return Array.prototype.map.call(root.querySelectorAll("tr[data-call-id]"), function (tr) {
      return tr.dataset.callId + ":" + tr.dataset.state;
    }).join(",");
  }

  function inProgress(root) {
    return root.querySelectorAll("tr[data-state]:not([data-state^='ended'])").length;
  }

  function replaceRows(html) {
    var focusedRow = document.activeElement && tbody.contains(document.activeElement)
      ? document.activeElement.closest("tr[data-call-id]") : null;
    var focusedId = focusedRow ? focusedRow.dataset.callId : null;
    var before = states(tbody);
    var fresh = document.createElement("tbody");
    fresh.innerHTML = html;
    if (fresh.innerHTML === tbody.innerHTML) return;
    tbody.innerHTML = fresh.innerHTML;
    if (focusedId) {
      var link = tbody.querySelector("tr[data-call-id='" + focusedId + "'] a");
      if (link) link.focus();
    }
    if (states(tbody) !== before) {
      var n = inProgress(tbody);
      var time = new Date().toISOString().slice(11, 19);
      status.textContent = "Updated at " + time + " UTC: " + n + (n === 1 ? " call" : " calls") +
        " not ended on this page.";
    }
  }

  function schedule() {
    if (!stopped && !document.hidden && timer === null) timer = window.setTimeout(poll, INTERVAL_MS);
  }

  function pause() {
    if (timer !== null) { window.clearTimeout(timer); timer = null; }
    if (inflight) { inflight.abort(); inflight = null; }
  }

  function poll() {
    timer = null;
    if (stopped || document.hidden) return;
    inflight = new AbortController();
    fetch(src, { credentials: "same-origin", signal: inflight.signal, headers: { "Accept": "text/html" } })
      .then(function (r) {
        if (r.status === 401) {
          stopped = true;
          status.textContent = "Your session has ended: sign in again to see live updates.";
          return null;
        }
        return r.ok ? r.text() : null;
      })
      .then(function (html) {
        inflight = null;
        if (html !== null) replaceRows(html);
        schedule();
      })
      .catch(function (err) {
        inflight = null;
        if (err.name !== "AbortError") schedule();  // a network blip: try again later
      });
  }

  document.addEventListener("visibilitychange", function () {
    if (document.hidden) pause(); else { pause(); poll(); }
  });
  window.addEventListener("pagehide", function () { stopped = true; pause(); });
  window.addEventListener("pageshow", function (ev) { if (ev.persisted) { stopped = false; poll(); } });
  schedule();
})();
