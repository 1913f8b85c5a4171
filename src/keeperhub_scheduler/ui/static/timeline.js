// The timeline: one lane per schedule, one mark per occurrence, redrawn from timeline.json every
// few seconds while the window follows now. Everything is built with DOM calls (textContent and
// setAttribute, never HTML strings), so names and labels from the database stay text.
(function () {
  "use strict";
  var root = document.getElementById("timeline");
  if (!root) return;
  var SVG = "http://www.w3.org/2000/svg";
  var LABEL = 260, ROW = 26, AXIS = 26, RIGHT = 12, REFRESH_MS = 5000;
  var source = root.getAttribute("data-source");
  var pageUrl = root.getAttribute("data-page");
  var base = root.getAttribute("data-base");
  var statusLine = document.getElementById("timeline-status");
  var pager = document.getElementById("pager");
  var pan = document.getElementById("pan");
  var timer = null;
  var STEPS = [60, 300, 600, 900, 1800, 3600, 10800, 21600, 43200, 86400].map(function (s) { return s * 1000; });

  function node(name, attributes, parent) {
    var element = document.createElementNS(SVG, name);
    Object.keys(attributes || {}).forEach(function (key) { element.setAttribute(key, String(attributes[key])); });
    if (parent) parent.appendChild(element);
    return element;
  }

  function titled(element, text) {
    var title = document.createElementNS(SVG, "title");
    title.textContent = text;
    element.appendChild(title);
    return element;
  }

  function pad(n) { return (n < 10 ? "0" : "") + n; }
  function clock(ms, withDay) {
    var d = new Date(ms);
    var time = pad(d.getUTCHours()) + ":" + pad(d.getUTCMinutes());
    return withDay ? pad(d.getUTCMonth() + 1) + "-" + pad(d.getUTCDate()) + " " + time : time;
  }

  function link(href, parent) {
    var a = node("a", { href: href }, parent);
    return a;
  }

  function draw(data) {
    var width = Math.max(640, root.clientWidth);
    var plot = width - LABEL - RIGHT;
    var span = data.end - data.start;
    var x = function (t) { return LABEL + ((t - data.start) / span) * plot; };
    var height = AXIS + Math.max(1, data.lanes.length) * ROW + 4;
    var svg = node("svg", { width: width, height: height, "class": "timeline-svg", role: "img",
      "aria-label": "Runs per schedule over time" });

    var bands = node("g", { "class": "bands" }, svg);
    data.lanes.forEach(function (lane, i) {
      node("rect", { x: 0, y: AXIS + i * ROW, width: width, height: ROW, "class": i % 2 ? "band odd" : "band" }, bands);
    });
    var step = STEPS.filter(function (s) { return span / s <= 9; })[0] || STEPS[STEPS.length - 1];
    var axis = node("g", { "class": "axis" }, svg);
    for (var t = Math.ceil(data.start / step) * step; t <= data.end; t += step) {
      node("line", { x1: x(t), x2: x(t), y1: AXIS - 6, y2: height, "class": "tick" }, axis);
      node("text", { x: x(t), y: AXIS - 10, "class": "tick-label" }, axis).textContent = clock(t, step >= 86400000 || span > 86400000 * 1.5);
    }
    if (data.now >= data.start && data.now <= data.end) {
      var now = node("line", { x1: x(data.now), x2: x(data.now), y1: AXIS - 6, y2: height, "class": "now" }, svg);
      titled(now, "now");
    }

    data.lanes.forEach(function (lane, i) {
      var y = AXIS + i * ROW;
      var g = node("g", { "class": "lane" + (lane.paused ? " paused" : "") + (lane.enabled ? "" : " disabled"),
        "data-schedule": lane.id, "data-occurrences": lane.occurrences, "data-marks": lane.marks.length + lane.ranges.length }, svg);
      var label = link(base + "/schedules/" + encodeURIComponent(lane.id), g);
      var text = node("text", { x: 6, y: y + ROW / 2 + 4, "class": "lane-label" }, label);
      text.textContent = (lane.paused ? "\u2016 " : "") + (lane.name.length > 34 ? lane.name.slice(0, 33) + "\u2026" : lane.name);
      titled(label, lane.name + " (" + lane.workflow_id + ", " + lane.timezone + ")" +
        (lane.paused ? " paused" + (lane.paused_note ? ": " + lane.paused_note : "") : "") +
        (lane.enabled ? "" : " disabled"));

      lane.planned.forEach(function (p) {
        titled(node("rect", { x: x(p.t) - 2, y: y + 6, width: 4, height: ROW - 12, "class": "mark planned" }, g), p.label);
      });
      lane.ranges.forEach(function (r) {
        var left = Math.max(LABEL, x(r.t)), right = Math.min(LABEL + plot, x(r.t2));
        var holder = r.run ? link(base + "/runs/" + encodeURIComponent(r.run), g) : g;
        titled(node("rect", { x: left - 2, y: y + 9, width: Math.max(4, right - left + 4), height: ROW - 18,
          "class": "mark range v-" + r.verdict, "data-verdict": r.verdict }, holder), r.label);
      });
      lane.marks.forEach(function (m) {
        var holder = m.run ? link(base + "/runs/" + encodeURIComponent(m.run), g) : g;
        titled(node("rect", { x: x(m.t) - 2, y: y + 5, width: 4, height: ROW - 10,
          "class": "mark v-" + m.verdict, "data-verdict": m.verdict, "data-n": m.n }, holder), m.label);
      });
    });
    if (!data.lanes.length) {
      node("text", { x: LABEL, y: AXIS + 18, "class": "empty" }, svg).textContent = "No schedule matches.";
    }
    root.replaceChildren(svg);
    drawPager(data);
    drawPan(data);
    statusLine.textContent = data.lanes.length + " of " + data.total_lanes + " schedules, page " + data.page +
      " of " + data.pages + (data.live ? " \u00B7 live, updated " : " \u00B7 as of ") + clock(data.now) + ":" +
      pad(new Date(data.now).getUTCSeconds()) + " UTC" + (data.truncated ? " \u00B7 too many runs: some are not drawn" : "");
  }

  function pageLink(changes, text, parent) {
    var url = new URL(pageUrl, window.location.href);
    Object.keys(changes).forEach(function (key) {
      if (changes[key] === null) url.searchParams.delete(key); else url.searchParams.set(key, changes[key]);
    });
    var a = document.createElement("a");
    a.href = url.pathname + url.search;
    a.textContent = text;
    parent.appendChild(a);
  }

  function drawPager(data) {
    pager.replaceChildren();
    if (data.pages <= 1) return;
    if (data.page > 1) pageLink({ page: data.page - 1 }, "\u2190 previous lanes", pager);
    if (data.page < data.pages) pageLink({ page: data.page + 1 }, "next lanes \u2192", pager);
  }

  function drawPan(data) {
    pan.replaceChildren();
    var viewEnd = data.view_end, half = data.span / 2;
    pageLink({ end: new Date(viewEnd - half).toISOString() }, "\u2190 earlier", pan);
    if (!data.live) {
      var later = viewEnd + half;
      pageLink({ end: later >= data.now ? null : new Date(later).toISOString() }, "later \u2192", pan);
      pageLink({ end: null }, "now", pan);
    }
  }

  function next(live) {
    window.clearTimeout(timer);
    if (live) timer = window.setTimeout(load, REFRESH_MS);
  }

  function load() {
    if (document.hidden) { next(true); return; }
    fetch(source, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        if (response.status === 401) { window.location.reload(); return null; }
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.json();
      })
      .then(function (data) { if (data) { draw(data); next(data.live); } })
      .catch(function (error) { statusLine.textContent = "Could not refresh (" + error.message + "); trying again."; next(true); });
  }

  load();
})();
