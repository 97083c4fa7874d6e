// Builds every <canvas data-chart="ID"> from the JSON in <script type="application/json" id="ID">.
// Data never becomes code: it is parsed with JSON.parse and handed to Chart.js as plain values.
(function () {
  "use strict";
  if (typeof Chart === "undefined") { return; }
  var PALETTE = ["#2563eb", "#dc2626", "#059669", "#d97706", "#7c3aed", "#db2777", "#0891b2", "#65a30d"];
  var evaluationBase = document.body.getAttribute("data-evaluation-base") || "/evaluations/";

  // Vertical dashed lines where the champion alias moved (options.plugins.aliasMarkers.markers).
  var aliasMarkers = {
    id: "aliasMarkers",
    afterDatasetsDraw: function (chart, args, opts) {
      var markers = (opts && opts.markers) || [];
      var x = chart.scales.x;
      var area = chart.chartArea;
      if (!x || !markers.length) { return; }
      var ctx = chart.ctx;
      ctx.save();
      markers.forEach(function (m) {
        var px = x.getPixelForValue(m.index);
        if (m.index > 0) { px -= (x.getPixelForValue(m.index) - x.getPixelForValue(m.index - 1)) / 2; }
        ctx.strokeStyle = "#6b7280";
        ctx.setLineDash([4, 4]);
        ctx.beginPath();
        ctx.moveTo(px, area.top);
        ctx.lineTo(px, area.bottom);
        ctx.stroke();
        ctx.setLineDash([]);
        ctx.fillStyle = "#374151";
        ctx.font = "11px system-ui, sans-serif";
        ctx.fillText(m.label, Math.min(px + 3, area.right - 24), area.top + 11);
      });
      ctx.restore();
    }
  };
  Chart.register(aliasMarkers);

  function build(canvas) {
    var source = document.getElementById(canvas.getAttribute("data-chart"));
    if (!source) { return; }
    var payload = JSON.parse(source.textContent);
    var kind = canvas.getAttribute("data-kind") || "line";
    var datasets = (payload.datasets || []).map(function (d, i) {
      var color = PALETTE[i % PALETTE.length];
      if (d.band) {  // an interval bound: no line of its own; the upper one fills down to the lower
        return {
          label: d.label, data: d.data, borderColor: "#93c5fd", backgroundColor: "#93c5fd55",
          borderWidth: 1, pointRadius: 0, spanGaps: true, tension: 0, fill: d.fill || false
        };
      }
      return {
        label: d.label, data: d.data, borderColor: color,
        backgroundColor: kind === "bar" ? color + "88" : color,
        borderDash: d.dashed ? [6, 4] : undefined, borderWidth: kind === "bar" ? 1 : 2,
        pointRadius: kind === "line" ? 3 : undefined, spanGaps: true, tension: 0,
        grouped: true
      };
    });
    var yTicks = payload.percent ? { callback: function (v) { return Math.round(v * 100) + "%"; } } : {};
    var compact = !!payload.compact;  // an overview card's trend: no legend box, few ticks
    new Chart(canvas, {
      type: kind,
      data: { labels: payload.labels || [], datasets: datasets },
      options: {
        responsive: true, maintainAspectRatio: false, animation: false,
        interaction: { mode: "index", intersect: false },
        scales: {
          x: { display: !compact, ticks: { maxRotation: 0, autoSkip: true, maxTicksLimit: 8 } },
          y: { beginAtZero: true, max: payload.max, ticks: yTicks,
               title: { display: !!canvas.getAttribute("data-ylabel"), text: canvas.getAttribute("data-ylabel") } }
        },
        plugins: {
          legend: { position: "bottom", labels: { boxWidth: compact ? 8 : 12, font: { size: compact ? 10 : 12 } } },
          aliasMarkers: { markers: payload.markers || [] },
          tooltip: { callbacks: { title: function (items) {
            if (!items.length) { return ""; }
            var id = payload.ids ? payload.ids[items[0].dataIndex] : null;
            return items[0].label + (id ? "  (evaluation #" + id + ")" : "");
          } } }
        },
        onClick: function (event, elements) {
          if (payload.ids && elements.length) {
            window.location.href = evaluationBase + payload.ids[elements[0].index];
          }
        }
      }
    });
  }

  Array.prototype.forEach.call(document.querySelectorAll("canvas[data-chart]"), build);
}());
