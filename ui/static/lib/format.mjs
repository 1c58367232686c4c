// Formatting shared by the pages.

export const finalStatuses = ["succeeded", "failed", "timed_out", "cancelled"];
export const allStatuses = ["queued", "running", ...finalStatuses];

export function isFinal(status) {
  return finalStatuses.includes(status);
}

export function statusLabel(status) {
  return status === "timed_out" ? "timed out" : status;
}

/** duration formats milliseconds for people: 0.4 ms, 12 ms, 1.2 s, 3 min. */
export function duration(ms) {
  if (ms === null || ms === undefined) return "—";
  if (ms < 1) return `${ms.toFixed(2)} ms`;
  if (ms < 10) return `${ms.toFixed(1)} ms`;
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms % 1000 === 0 && ms < 60000) return `${ms / 1000} s`;
  if (ms < 60000) return `${(ms / 1000).toFixed(ms < 10000 ? 2 : 1)} s`;
  const min = Math.floor(ms / 60000);
  return `${min} min ${Math.round((ms % 60000) / 1000)} s`;
}

/** ago formats a time relative to now: "just now", "5 s ago", "3 min ago", "in 2 h". */
export function ago(iso, now = Date.now()) {
  if (!iso) return "—";
  const diff = (now - new Date(iso).getTime()) / 1000;
  const future = diff < 0;
  const s = Math.abs(diff);
  let text;
  if (s < 5) return future ? "in a moment" : "just now";
  if (s < 60) text = `${Math.floor(s)} s`;
  else if (s < 3600) text = `${Math.floor(s / 60)} min`;
  else if (s < 86400) text = `${Math.floor(s / 3600)} h`;
  else text = `${Math.floor(s / 86400)} d`;
  return future ? `in ${text}` : `${text} ago`;
}

/** dateTime is a full local timestamp, for titles and detail pages. */
export function dateTime(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  const pad = (n, w = 2) => String(n).padStart(w, "0");
  return (
    `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`
  );
}

export function clockTime(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  const pad = (n, w = 2) => String(n).padStart(w, "0");
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

export function bytes(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

/** pretty shows JSON indented; anything else as it is. */
export function pretty(value) {
  if (value === undefined) return "";
  if (typeof value === "string") {
    try {
      return JSON.stringify(JSON.parse(value), null, 2);
    } catch {
      return value;
    }
  }
  return JSON.stringify(value, null, 2);
}

export function percent(part, whole) {
  if (!whole) return "—";
  const p = (100 * part) / whole;
  return p === 0 || p === 100 || p >= 10 ? `${Math.round(p)}%` : `${p.toFixed(1)}%`;
}
