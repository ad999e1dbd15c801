// The live stream: an EventSource on /api/v1/monitoring/stream, resumed from the
// last event id it delivered. The browser reconnects by itself (sending
// Last-Event-ID) after a dropped connection; when it gives up (a non-200 answer)
// a new EventSource resumes from the same id. A banner shows while disconnected.

export class LiveStream {
  constructor(after, onEvent, onState) {
    this.lastId = after;
    this.onEvent = onEvent;
    this.onState = onState;
    this.retryMs = 500;
    this.source = null;
  }

  start() {
    const source = new EventSource(`/api/v1/monitoring/stream?last_event_id=${this.lastId}`, { withCredentials: true });
    this.source = source;
    source.onopen = () => {
      this.retryMs = 500;
      this.onState("live");
    };
    source.onmessage = (message) => {
      if (message.lastEventId) this.lastId = Number(message.lastEventId);
      this.onEvent(JSON.parse(message.data));
    };
    source.onerror = () => {
      this.onState("disconnected");
      if (source.readyState === EventSource.CLOSED) {
        source.close();
        setTimeout(() => this._restart(), this.retryMs);
        this.retryMs = Math.min(this.retryMs * 2, 10000);
      }
    };
  }

  async _restart() {
    // A refused stream may mean the session ended: ask a plain route, whose 401
    // reloads the page onto the login form.
    try {
      const response = await fetch("/api/v1/monitoring/circuit-breakers", { credentials: "same-origin" });
      if (response.status === 401) {
        window.location.reload();
        return;
      }
    } catch {
      // The server is still away: try the stream again anyway, it backs off.
    }
    this.start();
  }
}
