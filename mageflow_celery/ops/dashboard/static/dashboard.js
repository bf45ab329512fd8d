// mageflow dashboard: live progress over server-sent events, and the action buttons.
// The token is asked once per tab, kept in sessionStorage and sent as an Authorization header (never a cookie).
(function () {
  "use strict";
  var body = document.body;
  var base = body.dataset.base || "";
  var TOKEN_KEY = "mageflowDashboardToken";

  function rowsOf(id) {
    return Array.prototype.filter.call(document.querySelectorAll("[data-swarm-id]"), function (el) {
      return el.dataset.swarmId === id;
    });
  }

  function update(d) {
    rowsOf(d.swarm_id).forEach(function (row) {
      row.dataset.state = d.state;
      row.querySelectorAll("[data-field]").forEach(function (el) {
        var f = el.dataset.field;
        if (f === "bar") {
          el.max = d.total || 1;
          el.value = d.done;
          el.textContent = d.percent + "%";
        } else if (f === "state") {
          el.textContent = d.state;
          el.className = "state state-" + d.state;
        } else if (f === "donetotal") {
          el.textContent = d.done + "/" + d.total;
        } else if (f === "running") {
          el.textContent = d.running + "/" + d.max_concurrency;
        } else if (Object.prototype.hasOwnProperty.call(d, f)) {
          el.textContent = d[f];
        }
      });
    });
  }

  var ids = [];
  document.querySelectorAll("[data-swarm-id]").forEach(function (el) {
    if (ids.indexOf(el.dataset.swarmId) < 0) ids.push(el.dataset.swarmId);
  });
  if (ids.length && window.EventSource) {
    var source = new EventSource(base + "/events?ids=" + encodeURIComponent(ids.join(",")));
    source.addEventListener("open", function () { body.dataset.live = "on"; });
    source.addEventListener("error", function () { body.dataset.live = "off"; });
    source.addEventListener("progress", function (ev) { update(JSON.parse(ev.data)); });
    window.addEventListener("pagehide", function () { source.close(); });
  }

  var QUESTIONS = {
    cancel: "Cancel swarm {id}? Members that did not start never run, started ones are revoked, and no callback runs. This cannot be undone.",
    close: "Close swarm {id}? No member can be added afterwards; it finishes once its members have."
  };

  function say(text, ok) {
    var out = document.getElementById("action-status");
    if (out) {
      out.textContent = text;
      out.className = ok ? "ok" : "error";
    }
  }

  function token() {
    var found = window.sessionStorage.getItem(TOKEN_KEY);
    if (!found) {
      found = window.prompt("Dashboard token (sent as an Authorization header; kept for this tab only):");
      if (found) window.sessionStorage.setItem(TOKEN_KEY, found.trim());
    }
    return found ? found.trim() : null;
  }

  function act(button) {
    var id = button.dataset.target, action = button.dataset.action, payload = null;
    if (QUESTIONS[action] && !window.confirm(QUESTIONS[action].replace("{id}", id))) return;
    if (action === "resize") {
      payload = JSON.stringify({ max_concurrency: parseInt(document.getElementById("resize-value").value, 10) });
    }
    var secret = token();
    if (!secret) {
      say(action + ": no token given", false);
      return;
    }
    fetch(base + "/api/swarms/" + encodeURIComponent(id) + "/" + action, {
      method: "POST",
      credentials: "omit",
      headers: { "Authorization": "Bearer " + secret, "Content-Type": "application/json" },
      body: payload
    }).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (out) {
        if (response.status === 401 || response.status === 403) window.sessionStorage.removeItem(TOKEN_KEY);
        if (!response.ok) {
          say(action + " refused (" + response.status + "): " + (out.error || response.statusText), false);
          return;
        }
        say(out.changed ? action + ": done" : action + ": nothing to change", true);
        if (out.progress) update(out.progress);
      });
    }).catch(function (err) { say(action + " failed: " + err, false); });
  }

  document.querySelectorAll("[data-action]").forEach(function (button) {
    button.addEventListener("click", function () { act(button); });
  });
})();
