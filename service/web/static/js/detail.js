// The request detail drawer: stages, error, events, video and trace links. Its URL
// (/monitoring/requests/<id>) is shareable; it refreshes while its request changes.
import { getJSON, NotFound } from "./api.js";
import { clock, dateTime, duration, el } from "./util.js";

const box = () => document.getElementById("detail");
const body = () => document.getElementById("detail-body");
let openKey = null;
let openId = null;

function kv(pairs) {
  return el("dl", { class: "kv" }, ...pairs.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v ?? "–")]));
}

function stagesTable(stages) {
  return el("table", { class: "stages" },
    el("thead", {}, el("tr", {}, ...["stage", "status", "attempts", "duration", "started", "error"].map((h) => el("th", {}, h)))),
    el("tbody", {}, ...stages.map((s) => el("tr", { "data-stage": s.name, "data-status": s.status, class: s.status === "failed" ? "sev-error" : "" },
      el("td", {}, s.name.replace(/_/g, " ")),
      el("td", {}, el("span", { class: "pill", "data-state": { completed: "done", in_progress: "running", failed: "failed" }[s.status] || "waiting" }, s.status)),
      el("td", {}, String(s.attempts)),
      el("td", {}, s.duration_seconds == null ? "–" : duration(s.duration_seconds * 1000)),
      el("td", {}, clock(s.started_at)),
      el("td", {}, s.error_message || "")))));
}

function eventsTable(events) {
  return el("table", { class: "events" },
    el("thead", {}, el("tr", {}, ...["time", "event", "stage", "message"].map((h) => el("th", {}, h)))),
    el("tbody", {}, ...events.map((e) => el("tr", { class: `sev-${e.severity}`, "data-event": e.event_type },
      el("td", { class: "mono" }, clock(e.created_at)), el("td", {}, e.event_type),
      el("td", {}, e.stage_name || ""), el("td", {}, e.message || "")))));
}

function render(r, events) {
  const trace = r.links.trace
    ? el("a", { href: r.links.trace, target: "_blank", rel: "noopener", class: "trace-link" }, `Open trace ${r.trace_id} in Jaeger`)
    : r.trace_id ? el("span", { class: "mono" }, `${r.trace_id} (set REELTRACE_JAEGER_URL to link it)`) : "not sampled";
  const videos = r.video_urls.length
    ? el("span", {}, ...r.video_urls.map((u, i) => el("a", { href: u, target: "_blank", rel: "noopener", class: "video-link" }, `video ${i + 1} `)))
    : "–";
  const parts = [
    el("div", { class: "detail-head" },
      el("h1", { class: "mono" }, r.correlation_id),
      el("span", { class: `status status-${r.status}` }, r.status),
      el("button", { class: "close", type: "button", "aria-label": "Close" }, "Close ✕")),
    kv([["request id", el("span", { class: "mono" }, r.id)], ["user", r.user_id], ["guild", r.guild_id],
        ["pipeline", r.pipeline], ["progress", `${r.progress_percentage} %`], ["created", dateTime(r.created_at)],
        ["queued for", r.queueing_seconds == null ? "–" : duration(r.queueing_seconds * 1000)],
        ["finished", dateTime(r.completed_at)], ["duration", duration(r.duration_ms)],
        ["prompt", r.prompt], ["video", videos], ["trace", trace]]),
    r.error_message ? el("div", { class: "error-box" }, `Failed at ${r.error_stage || "?"}: ${r.error_message}`) : null,
    el("h2", {}, "Stages"), stagesTable(r.stages),
    el("h2", {}, `Events (${events.length})`), eventsTable(events),
  ];
  body().replaceChildren(...parts.filter(Boolean));
  body().querySelector(".close").addEventListener("click", () => closeDetail(true));
}

export async function openDetail(key, { push = true } = {}) {
  openKey = key;
  box().hidden = false;
  if (push && location.pathname !== `/monitoring/requests/${key}`) history.pushState({ detail: key }, "", `/monitoring/requests/${key}`);
  await refreshDetail();
}

export async function refreshDetail() {
  const key = openKey;
  if (!key) return;
  try {
    const [r, events] = await Promise.all([
      getJSON(`/api/v1/monitoring/requests/${encodeURIComponent(key)}`),
      getJSON(`/api/v1/monitoring/requests/${encodeURIComponent(key)}/events?limit=5000`),
    ]);
    if (key !== openKey) return;
    openId = r.id;
    render(r, events);
  } catch (err) {
    if (key !== openKey) return;
    const text = err instanceof NotFound ? `No request ${key}.` : `Could not load ${key}: ${err.message}`;
    body().replaceChildren(el("div", { class: "detail-head" }, el("h1", {}, "Request"),
      el("button", { class: "close", type: "button" }, "Close ✕")), el("p", { class: "error-box not-found" }, text));
    body().querySelector(".close").addEventListener("click", () => closeDetail(true));
  }
}

export function closeDetail(push) {
  openKey = null;
  openId = null;
  box().hidden = true;
  if (push && location.pathname !== "/monitoring") history.pushState({}, "", "/monitoring");
}

export const detailId = () => openId;
