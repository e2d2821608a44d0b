// ONE native SSE stream (GET /api/events) read with fetch() + ReadableStream, because EventSource
// cannot send the Authorization header. Reconnects after the server's `retry:` delay with the last
// event id in Last-Event-ID, so the server replays what was missed (or says `resync`).

export class EventStream {
  // onEvent(name, data, id); onState("open" | "down" | "auth", detail)
  constructor(url, headers, onEvent, onState) {
    this.url = url;
    this.headers = headers;
    this.onEvent = onEvent;
    this.onState = onState;
    this.lastId = null;
    this.retryMs = 3000;
    this.controller = null;
    this.stopped = false;
    this.chunks = 0;
  }

  start() {
    this.stopped = false;
    this.loop();
  }

  stop() {
    this.stopped = true;
    if (this.controller) this.controller.abort();
  }

  async loop() {
    while (!this.stopped) {
      let failure = "the event stream ended";
      try {
        await this.once();
      } catch (e) {
        if (this.stopped) return;
        if (e && e.auth) {
          this.onState("auth", e.message);
          return;
        }
        failure = e && e.message ? e.message : String(e);
      }
      if (this.stopped) return;
      this.onState("down", failure);
      await new Promise((resolve) => setTimeout(resolve, this.retryMs));
    }
  }

  async once() {
    this.controller = new AbortController();
    const headers = this.headers({Accept: "text/event-stream"});
    if (this.lastId !== null) headers["Last-Event-ID"] = this.lastId;
    const response = await fetch(this.url, {headers, cache: "no-store", signal: this.controller.signal});
    if (response.status === 401) {
      const error = new Error("the token was refused");
      error.auth = true;
      throw error;
    }
    if (!response.ok || !response.body) throw new Error("HTTP " + response.status);
    this.onState("open");
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    let name = "";
    let data = [];
    let id = null;
    for (;;) {
      const {value, done} = await reader.read();
      if (done) return;
      performance.mark("fd-events-start");
      buffer += value;
      let start = 0;
      for (;;) {
        const end = buffer.indexOf("\n", start);
        if (end < 0) break;
        let line = buffer.slice(start, end);
        start = end + 1;
        if (line.endsWith("\r")) line = line.slice(0, -1);
        if (line === "") {
          if (data.length) {
            if (id !== null) this.lastId = id;
            let parsed = null;
            try { parsed = JSON.parse(data.join("\n")); } catch (e) { parsed = null; }
            if (parsed !== null) this.onEvent(name || "message", parsed, id);
          }
          name = ""; data = []; id = null;
          continue;
        }
        if (line.startsWith(":")) continue;
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        let rest = colon < 0 ? "" : line.slice(colon + 1);
        if (rest.startsWith(" ")) rest = rest.slice(1);
        if (field === "event") name = rest;
        else if (field === "data") data.push(rest);
        else if (field === "id") id = rest;
        else if (field === "retry" && /^\d+$/.test(rest)) this.retryMs = Number(rest);
      }
      buffer = buffer.slice(start);
      // the script time of one chunk of the stream: parsing and applying its events (render is apart)
      performance.measure("fd-events", "fd-events-start");
      performance.clearMarks("fd-events-start");
      if (++this.chunks % 5000 === 0) performance.clearMeasures("fd-events");
    }
  }
}
