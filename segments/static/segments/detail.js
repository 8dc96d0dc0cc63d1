// A segment's size over time: one point per day (the last size of that day), drawn as steps, since
// the size holds between changes.
(function () {
  "use strict";
  const mount = document.getElementById("size-history");
  if (!mount || !window.echarts) return;
  const history = JSON.parse(document.getElementById("size-history-data").textContent);
  const chart = window.echarts.init(mount, null, { renderer: "canvas" });
  chart.setOption({
    animation: false,
    grid: { left: 56, right: 18, top: 18, bottom: 30 },
    tooltip: { trigger: "axis" },
    xAxis: { type: "time", minInterval: 24 * 3600 * 1000 },
    yAxis: { type: "value", min: 0, minInterval: 1 },
    series: [
      {
        name: mount.dataset.label,
        type: "line",
        step: "end",
        data: history.points,
        showSymbol: history.points.length < 60,
        areaStyle: { opacity: 0.08 },
        lineStyle: { width: 2 },
      },
    ],
  });
  mount.dataset.ready = "true";
  window.addEventListener("resize", () => chart.resize());
})();
