// Progressive enhancement for the aar dashboard: every page works without this file.
"use strict";

// PGR chart: the figure is built on the server (Plotly figure JSON); plotly.min.js draws it.
function drawChart() {
  const el = document.getElementById("pgr-chart");
  const data = document.getElementById("pgr-figure");
  if (!el || !data || typeof Plotly === "undefined") return;
  const fig = JSON.parse(data.textContent);
  Plotly.newPlot(el, fig.data, fig.layout, { displaylogo: false, responsive: true }).then(function () {
    el.dataset.ready = "1";
  });
  el.on("plotly_click", function (ev) {
    const url = ev.points && ev.points[0] && ev.points[0].customdata;
    if (url) window.location.href = url;
  });
}

// Live progress (server-sent events): the panel shows the attempt in flight, its elapsed time and
// an estimate; a new attempt or status swaps the page's tables and charts in place (no reload).
function fmtSeconds(s) {
  s = Math.max(0, Math.round(s));
  return s >= 60 ? Math.floor(s / 60) + " min " + (s % 60) + " s" : s + " s";
}

function renderRunning(el, running, typical) {
  const list = document.getElementById("live-running");
  if (!list) return;
  list.textContent = "";
  if (!running.length) {
    const li = document.createElement("li");
    li.className = "waiting";
    li.textContent = "between attempts: the proposer is choosing the next idea";
    list.appendChild(li);
  }
  running.forEach(function (r) {
    const li = document.createElement("li");
    li.className = "running";
    li.dataset.started = r.started_at;
    const idea = document.createElement("strong");
    idea.className = "idea";
    idea.textContent = "#" + r.index + " " + r.idea;
    li.append("scoring ", idea, " (" + r.researcher + ") on seeds " + r.seeds.join(", ") + " · elapsed ");
    const elapsed = document.createElement("span");
    elapsed.className = "elapsed";
    const estimate = document.createElement("span");
    estimate.className = "estimate";
    li.append(elapsed, " · ", estimate);
    list.appendChild(li);
  });
  el.dataset.typical = typical === null || typical === undefined ? "" : String(typical);
  tickRunning(el);
}

function tickRunning(el) {
  const typical = el.dataset.typical ? Number(el.dataset.typical) : null;
  document.querySelectorAll("#live-running li.running").forEach(function (li) {
    const spent = (Date.now() - Date.parse(li.dataset.started)) / 1000;
    li.querySelector(".elapsed").textContent = fmtSeconds(spent);
    const estimate = li.querySelector(".estimate");
    if (typical === null) estimate.textContent = "no estimate before two attempts";
    else if (spent < typical) estimate.textContent = "about " + fmtSeconds(typical - spent) + " left (attempts here take about " + fmtSeconds(typical) + ")";
    else estimate.textContent = "longer than the usual " + fmtSeconds(typical);
  });
}

// Replace the elements with these ids by the fresh page's; false when the page's shape changed.
function swapParts(doc, ids) {
  for (const id of ids) {
    const now = document.getElementById(id);
    const fresh = doc.getElementById(id);
    if (!now !== !fresh) return false;
    if (now && fresh) now.replaceWith(fresh);
  }
  return true;
}

function refreshParts(ids, after) {
  return fetch(window.location.href, { headers: { "Accept": "text/html" } })
    .then(function (r) { return r.text(); })
    .then(function (html) {
      const doc = new DOMParser().parseFromString(html, "text/html");
      if (!swapParts(doc, ids)) { window.location.reload(); return; }
      if (after) after();
    });
}

function followSession() {
  const el = document.getElementById("live");
  if (!el || typeof EventSource === "undefined") return;
  const text = document.getElementById("live-text");
  const source = new EventSource(el.dataset.events);
  const timer = window.setInterval(function () { tickRunning(el); }, 1000);
  tickRunning(el);
  const onHead = function (ev) {
    const s = JSON.parse(ev.data);
    if (text) text.textContent = "last commit " + s.when.replace("T", " ").slice(0, 19) + " — " + s.subject;
    renderRunning(el, s.running || [], s.typical_s);
    if (String(s.attempts) !== el.dataset.attempts || s.status !== el.dataset.status) {
      el.dataset.attempts = String(s.attempts);
      el.dataset.status = s.status;
      refreshParts(["facts", "pgr-figure", "scatter", "seed-strips", "attempts-table", "attempts-count"], function () {
        drawChart();
        compareSelection();
      });
    }
  };
  source.addEventListener("head", onHead);
  source.addEventListener("end", function (ev) {
    onHead(ev);
    source.close();
    window.clearInterval(timer);
    el.classList.add("ended");
  });
}

// The sessions list: a session that commits, starts or ends updates its rows in place.
function followSessions() {
  const table = document.getElementById("sessions");
  if (!table || !table.dataset.live || typeof EventSource === "undefined") return;
  const source = new EventSource(table.dataset.live);
  // the stream starts from the state at connect time: every event is a change
  source.addEventListener("head", function () { refreshParts(["sessions", "sessions-count"]); });
}

// Compare: enable the button when two to eight rows are ticked.
function compareSelection() {
  const form = document.getElementById("compare-form");
  const button = document.getElementById("compare-button");
  if (!form || !button) return;
  const update = function () {
    const n = form.querySelectorAll("input[name=id]:checked").length;
    button.disabled = n < 2 || n > 8;
  };
  form.addEventListener("change", update);
  update();
}

document.addEventListener("DOMContentLoaded", function () {
  drawChart();
  followSession();
  followSessions();
  compareSelection();
});
