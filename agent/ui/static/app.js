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

// Live progress: the server streams the session branch's head; reload when attempts or status change.
function followSession() {
  const el = document.getElementById("live");
  if (!el || typeof EventSource === "undefined") return;
  const text = document.getElementById("live-text");
  const source = new EventSource(el.dataset.events);
  const onHead = function (ev) {
    const s = JSON.parse(ev.data);
    if (String(s.attempts) !== el.dataset.attempts || s.status !== el.dataset.status) {
      source.close();
      window.location.reload();
      return;
    }
    if (text) text.textContent = "last commit " + s.when.replace("T", " ").slice(0, 19) + " — " + s.subject;
  };
  source.addEventListener("head", onHead);
  source.addEventListener("end", function (ev) { onHead(ev); source.close(); });
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
  compareSelection();
});
