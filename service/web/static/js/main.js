// The monitoring page: load the current state from the JSON API (first paint does
// not wait for the stream), then follow the stream from the event id the server
// rendered into the page. Stream events are queued and applied once per animation
// frame, so a burst of changes costs one layout, not one per event.
import { allPages, getJSON } from "./api.js";
import { renderCharts, resizeCharts } from "./charts.js";
import { closeDetail, detailId, openDetail, refreshDetail } from "./detail.js";
import { renderBreakers, renderCards } from "./panels.js";
import { RowList } from "./rows.js";
import { Store } from "./store.js";
import { LiveStream } from "./stream.js";
import { REQUEST_KEY, TERMINAL } from "./util.js";

const boot = JSON.parse(document.getElementById("boot").textContent);
const store = new Store(boot.pipelines);
const PAGE_ROWS = 100;
const ACTIVE_CAP = 5000;
let activeLimit = PAGE_ROWS;
let activeComplete = true;
let dashboard = null;
const queue = [];
let frame = 0;
const $ = (id) => document.getElementById(id);
const filters = { status: "", pipeline: "", user: "", guild: "" };

const open = (id) => openDetail(id);
const activeList = new RowList($("active"), store, open, "No active requests.");
const finishedList = new RowList($("finished"), store, open, "Nothing finished yet.");

function matches(row) {
  return (!filters.status || row.status === filters.status)
    && (!filters.pipeline || row.pipeline === filters.pipeline)
    && (!filters.user || row.user_id === filters.user)
    && (!filters.guild || row.guild_id === filters.guild);
}

function draw() {
  frame = 0;
  let refreshCards = false;
  let refreshOpen = false;
  for (const ev of queue.splice(0)) {
    const row = store.apply(ev);
    if (!row) continue;
    if (TERMINAL.has(ev.status) && ev.event_type.startsWith("request_")) refreshCards = true;
    if (row.id === detailId()) refreshOpen = true;
    if (ev.event_type.startsWith("circuit_breaker")) later("breakers", quietly(loadBreakers), 0);
    if (!row.known) unknown.push(row);
  }
  const now = Date.now() + boot.skew;
  const active = store.active(matches);
  activeList.render(active.slice(0, activeLimit), now);
  $("more").hidden = active.length <= activeLimit;
  $("more").textContent = `Show more (${active.length - activeLimit} not shown)`;
  $("active-count").textContent = `${active.length}${activeComplete ? "" : "+"} shown of ${liveActive()}`;
  finishedList.render(store.finished(matches), now);
  store.dirty.clear();
  renderCards(dashboard, liveActive());
  if (unknown.length) later("hydrate", hydrate, 250);
  if (refreshCards) later("dashboard", quietly(loadDashboard), 2000);
  if (refreshOpen) later("detail", refreshDetail, 300);
}

const liveActive = () => (activeComplete || !dashboard ? store.activeCount() : Math.max(store.activeCount(), dashboard.active_requests));

function schedule() {
  if (!frame) frame = requestAnimationFrame(draw);
}

// At most one pending call per name: bursts collapse into one refresh.
const timers = {};
function later(name, fn, ms) {
  if (timers[name]) return;
  timers[name] = setTimeout(() => { timers[name] = 0; fn(); }, ms);
}

// Rows first seen on the stream lack their prompt and guild: one list call per
// burst fetches every request created since the oldest of them.
let unknown = [];
let hydrating = false;
async function hydrate() {
  if (hydrating || !unknown.length) return;
  hydrating = true;
  const batch = unknown.splice(0).filter((row) => !row.known);
  try {
    const since = batch.map((row) => row.created_at).sort()[0];
    if (since) {
      const from = new Date(Date.parse(since) - 1000).toISOString();
      await allPages(`/api/v1/monitoring/requests?limit=500&since=${encodeURIComponent(from)}`, 5000,
        (items) => { for (const s of items) store.fill(s); });
      for (const row of batch) row.known = true;
      schedule();
    }
  } catch { /* a failed fetch: those rows keep showing what the stream said */ }
  hydrating = false;
  if (unknown.length) later("hydrate", hydrate, 250);
}

async function loadDashboard() {
  dashboard = await getJSON("/api/v1/monitoring/dashboard");
  schedule();
}

async function loadBreakers() {
  renderBreakers(await getJSON("/api/v1/monitoring/circuit-breakers"));
}

async function loadCharts() {
  renderCharts(await getJSON("/api/v1/monitoring/metrics"));
}

async function loadLists() {
  const base = "/api/v1/monitoring/requests?limit=";
  const add = (items) => { for (const s of items) store.fromSummary(s); schedule(); };
  const finished = ["completed", "failed", "timeout"].map((s) => getJSON(`${base}50&status=${s}`).then((p) => add(p.items)));
  const active = ["generating", "pending"].map((s) => allPages(`${base}500&status=${s}`, ACTIVE_CAP / 2, add));
  const complete = await Promise.all(active);
  activeComplete = complete.every(Boolean);
  await Promise.all(finished);
}

function wire() {
  for (const [key, id] of [["status", "f-status"], ["pipeline", "f-pipeline"], ["user", "f-user"], ["guild", "f-guild"]]) {
    $(id).addEventListener("input", () => {
      filters[key] = $(id).value.trim();
      activeLimit = PAGE_ROWS;
      schedule();
    });
  }
  $("more").addEventListener("click", () => { activeLimit += PAGE_ROWS; schedule(); });
  $("find").addEventListener("submit", (e) => {
    e.preventDefault();
    const key = $("find-key").value.trim();
    if (REQUEST_KEY.test(key)) {
      openDetail(key);
    } else {
      $("find-key").setCustomValidity("Enter a request UUID or correlation ID");
      $("find-key").reportValidity();
    }
  });
  $("find-key").addEventListener("input", () => $("find-key").setCustomValidity(""));
  document.addEventListener("keydown", (e) => { if (e.key === "Escape") closeDetail(true); });
  window.addEventListener("popstate", () => {
    const m = location.pathname.match(/^\/monitoring\/requests\/([A-Za-z0-9_-]+)$/);
    if (m) openDetail(m[1], { push: false }); else closeDetail(false);
  });
  window.addEventListener("resize", () => later("resize", resizeCharts, 150));
}

function setLive(state) {
  $("live").dataset.state = state;
  $("live").textContent = state;
  $("banner").hidden = state !== "disconnected";
}

// Periodic refreshes fail while the server is away; the banner already says so.
const quietly = (fn) => () => fn().catch(() => {});

async function main() {
  boot.skew = boot.server_now ? Date.parse(boot.server_now) - Date.now() : 0;
  wire();
  if (boot.detail) openDetail(boot.detail, { push: false });
  await Promise.all([loadDashboard(), loadBreakers(), loadLists()]);
  new LiveStream(boot.stream_from, (ev) => { queue.push(ev); schedule(); }, setLive).start();
  await loadCharts();
  setInterval(() => { const now = Date.now() + boot.skew; activeList.tick(now); }, 1000);
  setInterval(quietly(loadBreakers), 2000);
  setInterval(quietly(loadDashboard), 30000);
  setInterval(quietly(loadCharts), 60000);
}

main();
