// The overview's chart: fires per quarter-hour over the last day, one line per verdict (uPlot).
(function () {
  "use strict";
  var holder = document.getElementById("fires-chart");
  var source = document.getElementById("fires-data");
  if (!holder || !source || typeof uPlot === "undefined") return;
  var chart = JSON.parse(source.textContent);
  var colours = {
    succeeded: "#2e7d32", failed: "#e65100", dead: "#b71c1c", skipped: "#78909c", pending: "#1565c0"
  };
  var names = Object.keys(chart.series);
  var series = [{}];
  var columns = [chart.x];
  names.forEach(function (name) {
    series.push({ label: name, stroke: colours[name] || "#333", width: 2, points: { show: false } });
    columns.push(chart.series[name]);
  });
  var width = Math.max(320, holder.clientWidth);
  var plot = new uPlot({
    width: width,
    height: 220,
    series: series,
    scales: { x: { time: true } },
    axes: [{}, { label: "fires" }],
    tzDate: function (ts) { return uPlot.tzDate(new Date(ts * 1000), "Etc/UTC"); }
  }, columns, holder);
  window.addEventListener("resize", function () {
    plot.setSize({ width: Math.max(320, holder.clientWidth), height: 220 });
  });
})();
