// The page's model: one entry per request seen, fed by list pages (summaries) and by
// stream events. Every change bumps the entry's version and marks it dirty; the view
// redraws only dirty entries, once per animation frame.
import { ACTIVE, TERMINAL } from "./util.js";

const FINISHED_KEPT = 50;

export class Store {
  constructor(pipelines) {
    this.pipelines = pipelines;
    this.rows = new Map();
    this.dirty = new Set();
    this.finishedOrder = [];
    // Requests pushed out of the last 50: a late event (the notification stage runs
    // after the request ended) must not bring them back.
    this.dropped = new Set();
  }

  fromSummary(s) {
    if (this.dropped.has(s.id)) return;
    const row = this.rows.get(s.id) || { id: s.id, version: 0, attempt: 1 };
    Object.assign(row, {
      correlation_id: s.correlation_id, user_id: s.user_id, guild_id: s.guild_id,
      pipeline: s.pipeline, prompt: s.prompt, status: s.status, current_stage: s.current_stage,
      progress: s.progress_percentage, created_at: s.created_at, started_at: s.started_at,
      finished_at: s.completed_at, error_stage: s.error_stage, error_message: s.error_message,
      known: true,
    });
    this._touch(row);
  }

  // Fills what stream events do not carry (prompt, guild, pipeline) without touching
  // the live fields, which the stream may have moved past this summary.
  fill(s) {
    const row = this.rows.get(s.id);
    if (!row) return;
    for (const [key, value] of [["prompt", s.prompt], ["guild_id", s.guild_id], ["pipeline", s.pipeline],
                                ["started_at", s.started_at], ["created_at", s.created_at]]) {
      if (row[key] === undefined || row[key] === "" || row[key] === null) row[key] = value;
    }
    row.known = true;
    this._touch(row);
  }

  // Applies one StreamEvent; returns the entry. Events carry the request's current
  // status, stage and progress, so replaying one after a reconnect is harmless.
  apply(ev) {
    if (this.dropped.has(ev.request_id)) return null;
    let row = this.rows.get(ev.request_id);
    if (!row) {
      row = { id: ev.request_id, version: 0, attempt: 1, known: false, guild_id: undefined,
              created_at: ev.created_at, prompt: "" };
    }
    row.correlation_id = ev.correlation_id;
    row.user_id = ev.user_id;
    row.status = ev.status;
    row.current_stage = ev.current_stage;
    row.progress = ev.progress_percentage;
    const type = ev.event_type;
    if (type === "request_created") {
      row.pipeline = ev.data.pipeline;
      row.created_at = ev.created_at;
    } else if (type === "request_started") {
      row.started_at = ev.created_at;
    } else if (type === "stage_started") {
      row.attempt = ev.data.attempt || 1;
    } else if (type === "request_failed" || type === "request_timeout") {
      row.error_stage = ev.stage_name;
      row.error_message = ev.message;
      row.finished_at = ev.created_at;
    } else if (type === "request_completed") {
      row.finished_at = ev.created_at;
    }
    if (TERMINAL.has(row.status) && !row.finished_at) row.finished_at = ev.created_at;
    this._touch(row);
    return row;
  }

  _touch(row) {
    row.version += 1;
    const wasNew = !this.rows.has(row.id);
    this.rows.set(row.id, row);
    this.dirty.add(row.id);
    if (TERMINAL.has(row.status) && !row.inFinished) {
      row.inFinished = true;
      this.finishedOrder.push(row.id);
      this._trimFinished();
    }
    return wasNew;
  }

  _trimFinished() {
    // Newest finish first; drop the oldest past the last 50 (their entries too).
    this.finishedOrder.sort((a, b) => this._finish(b) - this._finish(a));
    while (this.finishedOrder.length > FINISHED_KEPT) {
      const id = this.finishedOrder.pop();
      this.rows.delete(id);
      this.dropped.add(id);
    }
  }

  _finish(id) {
    const row = this.rows.get(id);
    return row && row.finished_at ? Date.parse(row.finished_at) : 0;
  }

  active(filter) {
    const out = [];
    for (const row of this.rows.values()) if (ACTIVE.has(row.status) && filter(row)) out.push(row);
    out.sort((a, b) => (b.created_at || "").localeCompare(a.created_at || ""));
    return out;
  }

  activeCount() {
    let n = 0;
    for (const row of this.rows.values()) if (ACTIVE.has(row.status)) n += 1;
    return n;
  }

  finished(filter) {
    this.finishedOrder.sort((a, b) => this._finish(b) - this._finish(a));
    return this.finishedOrder.map((id) => this.rows.get(id)).filter((row) => row && filter(row));
  }

  // The stages of a row's pipeline with a state each: done, running, failed or waiting.
  pills(row) {
    const stages = this.pipelines[row.pipeline] || [];
    const current = stages.indexOf(row.current_stage);
    if (row.status === "completed") return stages.map((name) => [name, "done"]);
    if (row.status === "failed" || row.status === "timeout") {
      const at = stages.indexOf(row.error_stage || row.current_stage);
      return stages.map((name, i) => [name, i < at ? "done" : i === at ? "failed" : "waiting"]);
    }
    if (row.status === "pending" || current < 0) return stages.map((name) => [name, "waiting"]);
    return stages.map((name, i) => [name, i < current ? "done" : i === current ? "running" : "waiting"]);
  }
}
