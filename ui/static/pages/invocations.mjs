// Invocations: a live list, newest first, filtered by function and status.
// The first page comes from GET /v1/invocations; later rows and status
// changes arrive from the live feed without a reload.
import { icons } from "../components/icons.mjs";
import { html, useEffect, useRef, useState } from "../lib/html.mjs";
import { api } from "../lib/api.mjs";
import { onReset, subscribe } from "../lib/live.mjs";
import { allStatuses, duration, statusLabel } from "../lib/format.mjs";
import { navigate, useLocation } from "../lib/router.mjs";
import { Empty, ErrorBox, PageHeader, Spinner, StatusBadge, Time, useAsync } from "../components/ui.mjs";

const maxRows = 500;

/**
 * useLiveInvocations keeps a list of invocations matching filter up to date:
 * new ones are added at the top, changed ones updated in place, and ones
 * that stop matching a status filter removed.
 */
export function useLiveInvocations({ fn = "", status = "", limit = 50 }) {
  const [rows, setRows] = useState(null);
  const [fresh, setFresh] = useState(() => new Set());
  const [error, setError] = useState(null);
  const [loadingMore, setLoadingMore] = useState(false);
  const [attempt, setAttempt] = useState(0);
  const cursor = useRef("");
  const [, setHasMore] = useState(false);

  const highlight = (id) => {
    setFresh((f) => new Set(f).add(id));
    setTimeout(
      () =>
        setFresh((f) => {
          const n = new Set(f);
          n.delete(id);
          return n;
        }),
      2500,
    );
  };

  // apply folds one update into a list, newest first.
  const apply = (list, inv, isLive) => {
    const i = list.findIndex((r) => r.id === inv.id);
    if (status && inv.status !== status) return i >= 0 ? list.filter((r) => r.id !== inv.id) : list;
    if (i >= 0) {
      const next = list.slice();
      next[i] = { ...list[i], ...inv };
      return next;
    }
    // An older row than the loaded pages hold belongs to a later page.
    if (cursor.current && list.length && inv.id < list[list.length - 1].id) return list;
    if (isLive) highlight(inv.id);
    return [inv, ...list].sort((a, b) => b.id - a.id).slice(0, maxRows);
  };

  useEffect(() => {
    let cancelled = false;
    let loaded = false;
    const pending = []; // updates that arrived while the first page loaded
    setRows(null);
    setError(null);
    const unsubscribe = subscribe((inv) => {
      if (fn && inv.function !== fn) return;
      if (!loaded) pending.push(inv);
      else setRows((old) => apply(old, inv, true));
    });
    api("GET", "/v1/invocations", { query: { function: fn, status, limit } })
      .then((page) => {
        if (cancelled) return;
        cursor.current = page.next_cursor || "";
        setHasMore(Boolean(cursor.current));
        let list = page.invocations;
        for (const inv of pending) list = apply(list, inv, false);
        loaded = true;
        setRows(list);
      })
      .catch((err) => !cancelled && setError(err));
    const offReset = onReset(() => setAttempt((n) => n + 1));
    return () => {
      cancelled = true;
      unsubscribe();
      offReset();
    };
  }, [fn, status, limit, attempt]);

  const more = async () => {
    setLoadingMore(true);
    try {
      const page = await api("GET", "/v1/invocations", { query: { function: fn, status, limit, cursor: cursor.current } });
      cursor.current = page.next_cursor || "";
      setHasMore(Boolean(cursor.current));
      setRows((old) => {
        const have = new Set(old.map((r) => r.id));
        return [...old, ...page.invocations.filter((r) => !have.has(r.id))];
      });
    } catch (err) {
      setError(err);
    } finally {
      setLoadingMore(false);
    }
  };

  return { rows, fresh, error, more: cursor.current ? more : null, loadingMore, reload: () => setAttempt((n) => n + 1) };
}

export function InvocationTable({ rows, fresh, showFunction = true, compact = false }) {
  return html`<table class=${"table clickable invocations" + (compact ? " compact" : "")} data-table="invocations">
    <thead>
      <tr>
        <th>ID</th>
        ${showFunction ? html`<th>Function</th>` : null}
        <th>Status</th>
        <th>Trigger</th>
        <th>Created</th>
        ${compact ? null : html`<th class="num">Wait</th>`}
        <th class="num">Duration</th>
        ${compact ? null : html`<th class="num">Attempt</th>`}
      </tr>
    </thead>
    <tbody>
      ${rows.map(
        (inv) => html`<tr
          key=${inv.id}
          class=${fresh?.has(inv.id) ? "fresh" : ""}
          data-invocation=${inv.id}
          onClick=${(e) => {
            if (!e.target.closest("a")) navigate(`/invocations/${inv.id}`);
          }}
        >
          <td><a class="mono" href=${`/ui/invocations/${inv.id}`}>#${inv.id}</a></td>
          ${showFunction
            ? html`<td><a href=${`/ui/functions/${inv.function}`}>${inv.function}</a>${inv.function_version ? html`<span class="muted"> v${inv.function_version}</span>` : null}</td>`
            : null}
          <td><${StatusBadge} status=${inv.status} /></td>
          <td><span class="trigger">${inv.trigger}</span></td>
          <td><${Time} at=${inv.created_at} /></td>
          ${compact ? null : html`<td class="num">${duration(inv.wait_ms)}</td>`}
          <td class="num">${duration(inv.run_ms)}</td>
          ${compact ? null : html`<td class="num">${inv.attempt}/${inv.max_attempts}</td>`}
        </tr>`,
      )}
    </tbody>
  </table>`;
}

export function Invocations() {
  const loc = useLocation();
  const fn = loc.query.get("function") || "";
  const status = loc.query.get("status") || "";
  const fns = useAsync(() => api("GET", "/v1/functions").catch(() => ({ functions: [] })), []);
  const live = useLiveInvocations({ fn, status });

  const setFilter = (key, value) => {
    const q = new URLSearchParams(loc.query);
    if (value) q.set(key, value);
    else q.delete(key);
    const s = q.toString();
    navigate("/invocations" + (s ? "?" + s : ""), { replace: true });
  };
  const names = new Set((fns.data?.functions || []).map((f) => f.name));
  if (fn) names.add(fn);

  return html`<div class="page">
    <${PageHeader} title="Invocations" subtitle="Every call of every function, newest first. New ones appear as they happen." />
    <div class="filters">
      <label>
        <span>Function</span>
        <select name="function" value=${fn} onChange=${(e) => setFilter("function", e.target.value)}>
          <option value="">All functions</option>
          ${[...names].sort().map((n) => html`<option value=${n}>${n}</option>`)}
        </select>
      </label>
      <label>
        <span>Status</span>
        <select name="status" value=${status} onChange=${(e) => setFilter("status", e.target.value)}>
          <option value="">Any status</option>
          ${allStatuses.map((s) => html`<option value=${s}>${statusLabel(s)}</option>`)}
        </select>
      </label>
      ${fn || status
        ? html`<button class="btn ghost small" onClick=${() => navigate("/invocations", { replace: true })}>Clear filters</button>`
        : null}
    </div>
    <${ErrorBox} error=${live.error} onRetry=${live.reload} />
    ${live.rows === null && !live.error ? html`<${Spinner} />` : null}
    ${live.rows && live.rows.length === 0
      ? html`<div class="card"><${Empty} icon=${icons.invocations()} title=${fn || status ? "No invocations match" : "No invocations yet"}>
          ${fn || status
            ? html`<p>Nothing ${status ? statusLabel(status) : ""} ${fn ? `for ${fn}` : ""} so far. New ones will appear here as they happen.</p>`
            : html`<p>Call a function from its page, with <code>curl /fn/<i>name</i></code>, or on a schedule. Invocations show up here the moment they are queued.</p>`}
        <//></div>`
      : null}
    ${live.rows && live.rows.length > 0
      ? html`<div class="card flush">
          <${InvocationTable} rows=${live.rows} fresh=${live.fresh} />
          ${live.more
            ? html`<div class="load-more"><button class="btn" disabled=${live.loadingMore} onClick=${live.more}>
                ${live.loadingMore ? "Loading…" : "Load older invocations"}
              </button></div>`
            : null}
        </div>`
      : null}
  </div>`;
}
