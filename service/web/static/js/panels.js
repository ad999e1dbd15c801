// The five stats cards and the circuit-breaker badges.
import { duration, el, usd } from "./util.js";

const $ = (id) => document.getElementById(id);

export function renderCards(dashboard, activeLive) {
  const counts = dashboard ? dashboard.counts_by_status : {};
  const completed = counts.completed || 0;
  const failed = counts.failed || 0;
  const timedOut = counts.timeout || 0;
  const terminal = completed + failed + timedOut;
  $("card-active").textContent = String(activeLive);
  if (!dashboard) return;
  $("card-completed").textContent = String(completed);
  $("card-completed-sub").textContent =
    terminal ? `${((100 * completed) / terminal).toFixed(1)} % success rate` : "no finished requests yet";
  $("card-failed").textContent = String(failed + timedOut);
  $("card-failed-sub").textContent = `${failed} failed · ${timedOut} timed out`;
  const latency = dashboard.completed_latency;
  $("card-duration").textContent = duration(latency.avg_ms);
  $("card-duration-sub").textContent = `P95 ${duration(latency.p95_ms)}`;
  // Spend is by creation time, like the daily budgets: today means since 00:00 UTC.
  $("card-spend").textContent = usd(dashboard.spend_today_usd);
  $("card-spend-sub").textContent = `${usd(dashboard.spend_usd)} · ${dashboard.window_hours} h`;
}

export function renderBreakers(breakers) {
  const box = $("breakers");
  if (!breakers.length) {
    box.replaceChildren(el("span", { class: "muted" }, "No breaker has been used yet (a worker publishes them as it runs)."));
    return;
  }
  box.replaceChildren(...breakers.map((b) =>
    el("span", {
      class: "breaker", "data-dependency": b.dependency, "data-state": b.state,
      title: `${b.processes} process(es); ${b.rejected_count} call(s) rejected while open`,
    },
      b.dependency, el("b", {}, b.state.toUpperCase()),
      el("span", { class: "n" }, `${b.failure_count} failures / ${b.call_count} calls`))));
}
