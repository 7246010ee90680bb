// A resumable event stream over server-sent events. An event's id is the stream
// offset to resume from so that nothing after it is missed: the end of its append
// for the last record of an append, the start of that append for the others (so
// those share the id of the event before them, and a resume from there gives them
// again). EventSource sends Last-Event-ID when it reconnects by itself; when it gives
// up (readyState CLOSED), this reconnects with ?offset=<last id>, backing off from
// 0.5 s to 10 s. Either way nothing is shown twice: an event whose id is before the
// last id is dropped, and so are the first events of a replayed append that were
// seen before the connection dropped. Each event gets a key, "<id>/<n>", unique in
// the stream: n counts the events that share the id.

const MIN_DELAY = 500;
const MAX_DELAY = 10_000;

export class LiveStream {
  /**
   * @param {string} url the stream's URL (with its ?token=)
   * @param {(event: object, id: string, key: string) => void} onEvent
   * @param {(state: string) => void} [onState] "connecting" | "live" | "reconnecting" | "closed"
   */
  constructor(url, onEvent, onState = () => {}) {
    this.url = url;
    this.onEvent = onEvent;
    this.onState = onState;
    this.lastId = "-1"; // where a stream read starts
    this.pending = 0; // events seen that share lastId (after the one that ended at it)
    this.skip = 0; // events of a replayed append still to drop
    this.received = 0;
    this.source = null;
    this.timer = null;
    this.delay = MIN_DELAY;
    this.stopped = true;
    this.connects = 0;
  }

  start() {
    this.stopped = false;
    this.connect();
    return this;
  }

  close() {
    this.stopped = true;
    clearTimeout(this.timer);
    this.source?.close();
    this.source = null;
    this.onState("closed");
  }

  connect() {
    if (this.stopped) return;
    this.source?.close();
    let url = this.url;
    if (this.lastId !== "-1") {
      url += `${url.includes("?") ? "&" : "?"}offset=${encodeURIComponent(this.lastId)}`;
    }
    this.connects += 1;
    this.onState(this.connects === 1 ? "connecting" : "reconnecting");
    const source = new EventSource(url);
    this.source = source;
    source.onopen = () => {
      if (source !== this.source) return;
      this.resumed();
      this.delay = MIN_DELAY;
      this.onState("live");
    };
    source.onmessage = (message) => {
      if (source === this.source) this.receive(message);
    };
    source.onerror = () => {
      if (source !== this.source || this.stopped) return;
      if (source.readyState === EventSource.CLOSED) {
        this.retry();
      } else {
        this.onState("reconnecting"); // the browser retries, with Last-Event-ID
      }
    };
  }

  retry() {
    this.source?.close();
    this.source = null;
    this.onState("reconnecting");
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.connect(), this.delay);
    this.delay = Math.min(this.delay * 2, MAX_DELAY);
  }

  /** A (re)connection is open: it starts at lastId, so the events seen that share
   * lastId come again first. */
  resumed() {
    this.skip = this.pending;
  }

  receive(message) {
    const id = message.lastEventId || null;
    let key = null;
    if (id !== null) {
      if (id < this.lastId) return; // before the resume point: seen already
      if (id === this.lastId) {
        if (this.skip > 0) {
          this.skip -= 1; // replayed: seen before the connection dropped
          return;
        }
        this.pending += 1;
      } else {
        this.lastId = id;
        this.pending = 0;
        this.skip = 0;
      }
      key = `${id}/${this.pending}`;
    }
    let event;
    try {
      event = JSON.parse(message.data);
    } catch {
      return; // a malformed frame is skipped
    }
    if (!event || typeof event !== "object") return;
    this.received += 1;
    this.onEvent(event, id, key);
  }
}
