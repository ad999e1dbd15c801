// The two request lists. Each row's DOM node is kept per request and rebuilt only
// when its entry changed; only the first `limit` matching rows are in the DOM.
import { duration, el } from "./util.js";

const STAGE_LABEL = (name) => name.replace(/_/g, " ");

function elapsedMs(row, now) {
  const from = row.started_at || row.created_at;
  return from ? now - Date.parse(from) : null;
}

function rowNode(store, row, now, onOpen) {
  const failed = row.status === "failed" || row.status === "timeout";
  const pills = store.pills(row).map(([name, state]) =>
    el("span", { class: "pill", "data-stage": name, "data-state": state, title: `${STAGE_LABEL(name)}: ${state}` },
      STAGE_LABEL(name)));
  const ended = row.finished_at && (row.started_at || row.created_at)
    ? Date.parse(row.finished_at) - Date.parse(row.started_at || row.created_at) : null;
  const node = el("div", {
    class: failed ? "row failed" : "row", "data-id": row.id, "data-status": row.status,
    "data-correlation-id": row.correlation_id, role: "button", tabindex: "0",
  },
    el("div", {},
      el("div", {}, el("span", { class: "row-id mono" }, row.correlation_id || row.id),
        el("span", { class: `status status-${row.status}` }, row.status)),
      el("div", { class: "row-meta" },
        `${row.user_id || "?"} · ${row.pipeline || "…"}`, row.guild_id ? ` · guild ${row.guild_id}` : "",
        " · ",
        row.finished_at
          ? el("span", {}, `took ${duration(ended)}`)
          : el("span", { class: "elapsed" }, duration(elapsedMs(row, now))),
        row.attempt > 1 && !row.finished_at ? el("span", { class: "attempt" }, ` · attempt ${row.attempt}`) : null),
      row.prompt ? el("div", { class: "row-prompt", title: row.prompt }, row.prompt) : null),
    el("div", {},
      el("div", { class: "progress", role: "progressbar", "aria-valuenow": row.progress || 0 },
        el("div", { style: `width:${row.progress || 0}%` })),
      el("div", { class: "progress-label" }, `${row.progress || 0}%`,
        row.current_stage && !row.finished_at ? ` · ${STAGE_LABEL(row.current_stage)}` : "")),
    el("div", { class: "pills" }, ...pills),
    failed ? el("div", { class: "row-error" },
      `Failed at ${row.error_stage ? STAGE_LABEL(row.error_stage) : "?"}: ${row.error_message || row.status}`) : null,
  );
  node.addEventListener("click", () => onOpen(row.id));
  node.addEventListener("keydown", (e) => { if (e.key === "Enter") onOpen(row.id); });
  node._version = row.version;
  return node;
}

export class RowList {
  constructor(container, store, onOpen, emptyText) {
    this.container = container;
    this.store = store;
    this.onOpen = onOpen;
    this.emptyText = emptyText;
    this.nodes = new Map();
  }

  // Brings the container in line with `rows` (already filtered, ordered and capped).
  render(rows, now) {
    const keep = new Set();
    let cursor = this.container.firstChild;
    if (cursor && cursor.classList && (cursor.classList.contains("muted") || cursor.classList.contains("empty"))) {
      cursor.remove();
      cursor = this.container.firstChild;
    }
    for (const row of rows) {
      keep.add(row.id);
      let node = this.nodes.get(row.id);
      if (!node || node._version !== row.version) {
        const fresh = rowNode(this.store, row, now, this.onOpen);
        if (node) {
          if (cursor === node) cursor = fresh;
          node.replaceWith(fresh);
        }
        node = fresh;
        this.nodes.set(row.id, node);
      }
      if (node !== cursor) this.container.insertBefore(node, cursor);
      else cursor = cursor.nextSibling;
    }
    for (const [id, node] of this.nodes) {
      if (!keep.has(id)) { node.remove(); this.nodes.delete(id); }
    }
    if (rows.length === 0 && !this.container.firstChild) {
      this.container.append(el("div", { class: "empty" }, this.emptyText));
    }
  }

  // Elapsed times tick without rebuilding rows.
  tick(now) {
    for (const [id, node] of this.nodes) {
      const row = this.store.rows.get(id);
      const span = node.querySelector(".elapsed");
      if (row && span) span.textContent = duration(elapsedMs(row, now));
    }
  }
}
