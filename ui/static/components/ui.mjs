// Building blocks shared by the pages.
import { html, useEffect, useState, useRef, useCallback } from "../lib/html.mjs";
import { ago, dateTime, statusLabel } from "../lib/format.mjs";

export function StatusBadge({ status }) {
  return html`<span class=${`badge status-${status}`} data-status=${status}>${statusLabel(status)}</span>`;
}

// Relative times re-render together once every few seconds.
let now = Date.now();
const clocks = new Set();
setInterval(() => {
  now = Date.now();
  for (const fn of clocks) fn(now);
}, 5000);

export function useNow() {
  const [t, setT] = useState(now);
  useEffect(() => {
    clocks.add(setT);
    return () => clocks.delete(setT);
  }, []);
  return Math.max(t, Date.now());
}

export function Time({ at }) {
  const t = useNow();
  if (!at) return html`<span class="muted">—</span>`;
  return html`<time datetime=${at} title=${dateTime(at)}>${ago(at, t)}</time>`;
}

/** ErrorBox shows a failed call where it happened, with the API's detail. */
export function ErrorBox({ error, onRetry, compact }) {
  if (!error) return null;
  const detail = error.detail || error.message || String(error);
  return html`<div class=${"error-box" + (compact ? " compact" : "")} role="alert">
    <strong>${error.title && error.status ? `${error.status} ${error.title}` : "Something went wrong"}</strong>
    <span class="error-detail">${detail}</span>
    ${error.errors?.length
      ? html`<ul>${error.errors.map((e) => html`<li><code>${e.location || ""}</code> ${e.message}</li>`)}</ul>`
      : null}
    ${onRetry ? html`<button class="btn small" onClick=${onRetry}>Try again</button>` : null}
  </div>`;
}

export function Empty({ icon = "○", title, children, action }) {
  return html`<div class="empty">
    <div class="empty-icon" aria-hidden="true">${icon}</div>
    <h3>${title}</h3>
    <div class="empty-body">${children}</div>
    ${action ? html`<div class="empty-action">${action}</div>` : null}
  </div>`;
}

export function PageHeader({ title, subtitle, children, back }) {
  return html`<header class="page-header">
    <div class="page-title">
      ${back ? html`<a class="back" href=${back.href}>← ${back.label}</a>` : null}
      <h1>${title}</h1>
      ${subtitle ? html`<div class="subtitle">${subtitle}</div>` : null}
    </div>
    <div class="page-actions">${children}</div>
  </header>`;
}

export function Spinner({ label = "Loading…" }) {
  return html`<div class="spinner" role="status"><span class="spin"></span>${label}</div>`;
}

export function CopyButton({ text, label = "Copy" }) {
  const [copied, setCopied] = useState(false);
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(text);
    } catch {
      // Clipboard API needs a secure context; fall back to a selection.
      const ta = document.createElement("textarea");
      ta.value = text;
      document.body.appendChild(ta);
      ta.select();
      document.execCommand("copy");
      ta.remove();
    }
    setCopied(true);
    setTimeout(() => setCopied(false), 1500);
  };
  return html`<button type="button" class="btn small ghost" onClick=${copy}>${copied ? "Copied" : label}</button>`;
}

export function Tabs({ tabs, active, onSelect }) {
  return html`<nav class="tabs" role="tablist">
    ${tabs.map(
      (t) => html`<button
        role="tab"
        type="button"
        class=${"tab" + (t.id === active ? " active" : "")}
        aria-selected=${t.id === active}
        data-tab=${t.id}
        onClick=${() => onSelect(t.id)}
      >
        ${t.label}${t.count !== undefined ? html`<span class="tab-count">${t.count}</span>` : null}
      </button>`,
    )}
  </nav>`;
}

// Toasts: short confirmations of what just happened.
const toastListeners = new Set();
let toastSeq = 0;
export function toast(message, kind = "ok") {
  const t = { id: ++toastSeq, message, kind };
  for (const fn of toastListeners) fn(t);
}

export function Toasts() {
  const [items, setItems] = useState([]);
  useEffect(() => {
    const add = (t) => {
      setItems((xs) => [...xs, t]);
      setTimeout(() => setItems((xs) => xs.filter((x) => x.id !== t.id)), 3500);
    };
    toastListeners.add(add);
    return () => toastListeners.delete(add);
  }, []);
  return html`<div class="toasts" aria-live="polite">
    ${items.map((t) => html`<div key=${t.id} class=${"toast " + t.kind}>${t.message}</div>`)}
  </div>`;
}

/** Modal is a dialog over the page; Escape or a click outside closes it. */
export function Modal({ title, onClose, children, footer, wide }) {
  const ref = useRef();
  useEffect(() => {
    const onKey = (e) => e.key === "Escape" && onClose();
    document.addEventListener("keydown", onKey);
    ref.current?.querySelector("input, textarea, select")?.focus();
    return () => document.removeEventListener("keydown", onKey);
  }, []);
  return html`<div class="modal-backdrop" onMouseDown=${(e) => e.target === e.currentTarget && onClose()}>
    <div class=${"modal" + (wide ? " wide" : "")} role="dialog" aria-modal="true" aria-label=${title} ref=${ref}>
      <div class="modal-head">
        <h2>${title}</h2>
        <button class="icon-btn" aria-label="Close" onClick=${onClose}>×</button>
      </div>
      <div class="modal-body">${children}</div>
      ${footer ? html`<div class="modal-foot">${footer}</div>` : null}
    </div>
  </div>`;
}

/** Confirm asks before something that cannot be undone. */
export function Confirm({ title, children, confirmLabel = "Delete", onConfirm, onClose }) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState(null);
  const go = async () => {
    setBusy(true);
    setError(null);
    try {
      await onConfirm();
      onClose();
    } catch (err) {
      setError(err);
      setBusy(false);
    }
  };
  return html`<${Modal}
    title=${title}
    onClose=${onClose}
    footer=${html`<button class="btn" onClick=${onClose}>Cancel</button>
      <button class="btn danger" disabled=${busy} onClick=${go}>${busy ? "Working…" : confirmLabel}</button>`}
  >
    ${children}
    <${ErrorBox} error=${error} compact />
  <//>`;
}

/**
 * useAsync runs load() now and whenever deps change; reload() runs it again
 * keeping the current data on screen (no flash of a spinner).
 */
export function useAsync(load, deps) {
  const [state, setState] = useState({ loading: true, data: undefined, error: null });
  const seq = useRef(0);
  const run = useCallback(async (quiet) => {
    const n = ++seq.current;
    if (!quiet) setState((s) => ({ ...s, loading: true, error: null }));
    try {
      const data = await load();
      if (n === seq.current) setState({ loading: false, data, error: null });
    } catch (error) {
      if (n === seq.current) setState((s) => ({ ...s, loading: false, error }));
    }
  }, deps);
  useEffect(() => {
    setState({ loading: true, data: undefined, error: null });
    run(true);
  }, [run]);
  return { ...state, reload: () => run(true), setData: (f) => setState((s) => ({ ...s, data: f(s.data) })) };
}

/** useDebounced calls fn at most once per wait ms, with the latest arguments. */
export function useDebounced(fn, wait) {
  const timer = useRef(0);
  const latest = useRef(fn);
  latest.current = fn;
  useEffect(() => () => clearTimeout(timer.current), []);
  return useCallback((...args) => {
    clearTimeout(timer.current);
    timer.current = setTimeout(() => latest.current(...args), wait);
  }, []);
}

export function Field({ label, hint, children, error }) {
  return html`<label class="field">
    <span class="field-label">${label}</span>
    ${children}
    ${hint ? html`<span class="field-hint">${hint}</span>` : null}
    ${error ? html`<span class="field-error">${error}</span>` : null}
  </label>`;
}
