// Live invocation updates. The server streams them as Server-Sent Events
// (GET /v1/events, event "invocation", data = the invocation). When the
// stream cannot be opened (an older server, a proxy that buffers), the same
// updates come from polling the list, so every page works either way; the
// sidebar says which one is in use.
//
// One stream serves every page: browsers allow only six connections per host
// over HTTP/1.1, and an open EventSource holds one.

import { api, auth, eventsURL, onAuthChange } from "./api.mjs";

export const pollInterval = 3000;
// After the stream failed for good, try it again this often while polling.
const retryStream = 30000;

const subscribers = new Set();
const resetListeners = new Set();
const modeListeners = new Set();
let mode = "off"; // "off" | "connecting" | "live" | "polling"
let source = null;
let pollTimer = 0;
let retryTimer = 0;
let seen = new Map(); // id → status|finished_at, for polling
let baseline = false;

export function liveMode() {
  return mode;
}

export function onLiveMode(fn) {
  modeListeners.add(fn);
  return () => modeListeners.delete(fn);
}

function setMode(m) {
  if (m === mode) return;
  mode = m;
  for (const fn of modeListeners) fn(m);
}

/**
 * subscribe calls fn(invocation) for every invocation that is created or
 * changes status, while at least one subscriber listens. It returns an
 * unsubscribe.
 */
export function subscribe(fn) {
  subscribers.add(fn);
  if (subscribers.size === 1) start();
  return () => {
    subscribers.delete(fn);
    if (subscribers.size === 0) stop();
  };
}

/**
 * onReset calls fn when the server says updates were dropped (the client
 * fell behind): lists should be read again. It returns an unsubscribe.
 */
export function onReset(fn) {
  resetListeners.add(fn);
  return () => resetListeners.delete(fn);
}

// preciseMs reads an RFC 3339 time to the microsecond: Date keeps only
// milliseconds, and sub-millisecond runs are common.
function preciseMs(iso) {
  const base = Date.parse(iso);
  const frac = /\.(\d+)/.exec(iso);
  return frac && frac[1].length > 3 ? base + Number("0." + frac[1].slice(3)) : base;
}

/**
 * normalize fills in what an event leaves out but the list shows: events
 * carry the timestamps, the invocation row also the durations.
 */
export function normalize(inv) {
  if (inv.wait_ms == null && inv.started_at && inv.created_at) inv.wait_ms = preciseMs(inv.started_at) - preciseMs(inv.created_at);
  if (inv.run_ms == null && inv.started_at && inv.finished_at) inv.run_ms = preciseMs(inv.finished_at) - preciseMs(inv.started_at);
  return inv;
}

function emit(inv) {
  normalize(inv);
  for (const fn of subscribers) {
    try {
      fn(inv);
    } catch (err) {
      console.error("live subscriber", err);
    }
  }
}

function start() {
  if (auth.mode !== "off" && auth.mode !== "key") return;
  openStream();
}

function stop() {
  if (source) source.close();
  source = null;
  clearInterval(pollTimer);
  clearTimeout(retryTimer);
  pollTimer = retryTimer = 0;
  setMode("off");
}

function openStream() {
  clearTimeout(retryTimer);
  retryTimer = 0;
  if (typeof EventSource === "undefined") {
    startPolling();
    return;
  }
  if (source) source.close();
  if (mode !== "polling") setMode("connecting");
  const es = new EventSource(eventsURL("/v1/events"));
  source = es;
  es.addEventListener("open", () => {
    if (source !== es) return;
    // A stream opened afresh resumes from nothing: one last poll covers
    // what happened since the previous one.
    if (pollTimer) poll();
    stopPolling();
    setMode("live");
  });
  es.addEventListener("reset", () => {
    for (const fn of resetListeners) fn();
  });
  es.addEventListener("invocation", (e) => {
    try {
      emit(JSON.parse(e.data));
    } catch (err) {
      console.warn("bad invocation event", err);
    }
  });
  es.addEventListener("error", () => {
    if (source !== es) return;
    // CONNECTING: the browser retries by itself, resuming with
    // Last-Event-ID; meanwhile polling fills the gap. CLOSED: the endpoint
    // answered with something other than a stream (404, 401) and will not
    // be retried, so we do it later ourselves.
    startPolling();
    if (es.readyState === EventSource.CLOSED) {
      es.close();
      source = null;
      retryTimer = setTimeout(() => subscribers.size && openStream(), retryStream);
    }
  });
}

function startPolling() {
  setMode("polling");
  if (pollTimer) return;
  baseline = false;
  seen = new Map();
  poll();
  pollTimer = setInterval(poll, pollInterval);
}

function stopPolling() {
  clearInterval(pollTimer);
  pollTimer = 0;
}

async function poll() {
  let page;
  try {
    page = await api("GET", "/v1/invocations", { query: { limit: 50 } });
  } catch {
    return; // the next tick tries again; pages show their own errors
  }
  const next = new Map();
  const changed = [];
  for (const inv of page.invocations) {
    const sig = `${inv.status}|${inv.finished_at || ""}|${inv.attempt}`;
    next.set(inv.id, sig);
    if (baseline && seen.get(inv.id) !== sig) changed.push(inv);
  }
  // Oldest first, as a stream would have told them.
  for (const inv of changed.reverse()) emit(inv);
  seen = next;
  baseline = true;
}

// A page left for another may be kept alive in the back-forward cache, and
// its stream with it: browsers give a host only six HTTP/1.1 connections,
// so a few such pages would starve the next one. Streams close when the
// page is hidden and reopen if it is shown again.
const streams = new Set();
window.addEventListener("pagehide", () => {
  stop();
  for (const es of streams) es.close();
  streams.clear();
});
window.addEventListener("pageshow", (e) => {
  if (e.persisted && subscribers.size) start();
});

onAuthChange(() => {
  if (subscribers.size === 0) return;
  stop();
  start();
});

/**
 * watchInvocation follows one invocation: onInvocation(inv) on each status
 * change and onLog(entry) for each log line as it is written (stream only).
 * Without the stream it long-polls GET /v1/invocations/{id}?wait= until the
 * invocation finishes. It returns a stop function.
 */
export function watchInvocation(id, { onInvocation, onLog, onMode }) {
  let stopped = false;
  let es = null;
  const final = (s) => ["succeeded", "failed", "timed_out", "cancelled"].includes(s);

  async function longPoll() {
    onMode?.("polling");
    while (!stopped) {
      try {
        const inv = await api("GET", `/v1/invocations/${id}`, { query: { wait: "25s" } });
        if (stopped) return;
        onInvocation(inv);
        if (final(inv.status)) return;
      } catch {
        await new Promise((r) => setTimeout(r, pollInterval));
      }
    }
  }

  if (typeof EventSource === "undefined") {
    longPoll();
  } else {
    es = new EventSource(eventsURL(`/v1/invocations/${id}/events`));
    streams.add(es);
    es.addEventListener("open", () => onMode?.("live"));
    es.addEventListener("invocation", (e) => {
      try {
        const inv = normalize(JSON.parse(e.data));
        onInvocation(inv);
        if (final(inv.status)) es.close();
      } catch (err) {
        console.warn("bad invocation event", err);
      }
    });
    es.addEventListener("log", (e) => {
      try {
        onLog?.(JSON.parse(e.data));
      } catch (err) {
        console.warn("bad log event", err);
      }
    });
    es.addEventListener("error", () => {
      if (es.readyState === EventSource.CLOSED && !stopped) {
        es = null;
        longPoll();
      }
    });
  }
  return () => {
    stopped = true;
    if (es) {
      es.close();
      streams.delete(es);
    }
  };
}
