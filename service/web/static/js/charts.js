// Hourly charts (uPlot, vendored): requests per hour by outcome, and durations per hour.
import { el } from "./util.js";

const COLORS = { completed: "#15803d", failed: "#b91c1c", timed_out: "#d97706", p50: "#2563eb", p95: "#7c3aed" };
const charts = [];

function size(box) {
  return { width: Math.max(280, box.clientWidth), height: 220 };
}

function series(label, color, fmt) {
  return { label, stroke: color, width: 2, points: { show: true, size: 5, fill: color }, value: (u, v) => (v == null ? "–" : fmt(v)) };
}

// The last 24 hours, whatever hours have data: one point must not stretch the axis.
function window24h() {
  return { time: true, range: () => { const now = Date.now() / 1000; return [now - 24 * 3600, now + 1800]; } };
}

function draw(box, opts, data) {
  const old = charts.find((c) => c.box === box);
  if (old) {
    old.plot.setData(data);
    return;
  }
  box.replaceChildren();
  const plot = new window.uPlot({ ...size(box), ...opts }, data, box);
  charts.push({ box, plot });
}

export function renderCharts(buckets) {
  if (!window.uPlot) return;
  const hours = buckets.map((b) => Date.parse(b.hour) / 1000);
  const count = (v) => String(Math.round(v));
  // Stacked bars: each series is drawn as the sum of itself and those below it
  // (timed out, then failed, then completed on top); the legend shows its own count.
  const timedOut = buckets.map((b) => b.timed_out);
  const failed = buckets.map((b) => b.failed + b.timed_out);
  const all = buckets.map((b) => b.completed + b.failed + b.timed_out);
  const own = { 1: buckets.map((b) => b.completed), 2: buckets.map((b) => b.failed), 3: timedOut };
  const bar = (label, color) => ({
    label, stroke: color, fill: color, width: 0, points: { show: false },
    paths: window.uPlot.paths.bars({ size: [0.7, 28] }),
    value: (u, v, si, i) => (i == null ? "–" : count(own[si][i])),
  });
  draw(document.getElementById("chart-outcomes"), {
    scales: { x: window24h(), y: { range: (u, min, max) => [0, Math.max(1, max)] } },
    axes: [{}, { label: "requests", size: 50 }],
    series: [{}, bar("completed", COLORS.completed), bar("failed", COLORS.failed), bar("timed out", COLORS.timed_out)],
  }, [hours, all, failed, timedOut]);

  // P50 when the API gives it per hour, else the average beside the P95.
  const hasP50 = buckets.some((b) => b.p50_duration_ms !== undefined);
  const secs = (v) => `${v.toFixed(1)} s`;
  const mid = buckets.map((b) => {
    const ms = hasP50 ? b.p50_duration_ms : b.avg_duration_ms;
    return ms == null ? null : ms / 1000;
  });
  draw(document.getElementById("chart-durations"), {
    scales: { x: window24h(), y: { range: (u, min, max) => [0, Math.max(1, max)] } },
    axes: [{}, { label: "seconds", size: 50 }],
    series: [{}, series(hasP50 ? "P50" : "average", COLORS.p50, secs),
             series("P95", COLORS.p95, secs)],
  }, [hours, mid, buckets.map((b) => (b.p95_duration_ms == null ? null : b.p95_duration_ms / 1000))]);
  for (const id of ["chart-outcomes", "chart-durations"]) {
    const box = document.getElementById(id);
    for (const note of box.querySelectorAll(".chart-empty")) note.remove();
    if (!buckets.length) box.append(el("div", { class: "muted chart-empty" }, "No requests in the last 24 h yet."));
  }
}

export function resizeCharts() {
  for (const { box, plot } of charts) plot.setSize(size(box));
}
