// One invocation: timings, request or payload, result, error, attempts and
// logs. While it runs, its own event stream brings status changes and log
// lines as they happen.
import { html, useEffect, useState } from "../lib/html.mjs";
import { api } from "../lib/api.mjs";
import { watchInvocation } from "../lib/live.mjs";
import { clockTime, dateTime, duration, isFinal, pretty } from "../lib/format.mjs";
import { Confirm, CopyButton, ErrorBox, PageHeader, Spinner, StatusBadge, Time, toast, useNow } from "../components/ui.mjs";

export function InvocationPage({ id }) {
  const [inv, setInv] = useState(null);
  const [error, setError] = useState(null);
  const [streamMode, setStreamMode] = useState("");
  const [liveLogs, setLiveLogs] = useState([]);
  const [cancelling, setCancelling] = useState(false);

  const load = () =>
    api("GET", `/v1/invocations/${id}`)
      .then((x) => {
        setInv(x);
        setLiveLogs([]);
        return x;
      })
      .catch(setError);

  useEffect(() => {
    let stop = () => {};
    let cancelled = false;
    load().then((first) => {
      if (cancelled || !first || isFinal(first.status)) return;
      stop = watchInvocation(id, {
        onMode: setStreamMode,
        // Events may carry a summary; the row itself has the logs and
        // result, so a finished invocation is read once more.
        onInvocation: (x) => {
          if (isFinal(x.status)) load();
          else setInv((old) => ({ ...old, ...x }));
        },
        onLog: (entry) => setLiveLogs((l) => [...l, entry]),
      });
    });
    return () => {
      cancelled = true;
      stop();
    };
  }, [id]);

  if (error) {
    return html`<div class="page">
      <${PageHeader} title=${`Invocation #${id}`} back=${{ href: "/ui/invocations", label: "Invocations" }} />
      <${ErrorBox} error=${error} onRetry=${() => {
        setError(null);
        load();
      }} />
    </div>`;
  }
  if (!inv) return html`<div class="page"><${Spinner} /></div>`;

  const logs = inv.logs?.length ? inv.logs : liveLogs;
  const running = !isFinal(inv.status);
  return html`<div class="page" data-invocation-page=${inv.id}>
    <${PageHeader}
      title=${html`Invocation <span class="mono">#${inv.id}</span> <${StatusBadge} status=${inv.status} />`}
      subtitle=${html`<a href=${`/ui/functions/${inv.function}`}>${inv.function}</a>
        <span>v${inv.function_version}</span><span class="sep">·</span><span>${inv.trigger} trigger</span><span class="sep">·</span>
        <span>created <${Time} at=${inv.created_at} /></span>
        ${running && streamMode === "live" ? html`<span class="sep">·</span><span class="live-inline">following live</span>` : null}`}
      back=${{ href: `/ui/invocations?function=${encodeURIComponent(inv.function)}`, label: "Invocations" }}
    >
      ${running ? html`<button class="btn danger-outline" onClick=${() => setCancelling(true)}>Cancel</button>` : null}
      ${inv.parent_id ? html`<a class="btn" href=${`/ui/invocations/${inv.parent_id}`}>Parent #${inv.parent_id}</a>` : null}
    <//>
    <${Timeline} inv=${inv} />
    ${inv.error
      ? html`<section class="card error-card" data-section="error">
          <div class="card-head"><h2>Error</h2></div>
          <pre class="error-text">${inv.error}</pre>
        </section>`
      : null}
    <div class="two-col">
      ${inv.request ? html`<${RequestCard} req=${inv.request} />` : null}
      ${inv.payload !== undefined
        ? html`<${JsonCard} title="Payload" value=${inv.payload} section="payload" />`
        : inv.request
          ? null
          : html`<section class="card"><div class="card-head"><h2>Payload</h2></div><div class="quiet-empty">No payload.</div></section>`}
      ${inv.result !== undefined
        ? inv.trigger === "http"
          ? html`<${ResponseCard} res=${inv.result} />`
          : html`<${JsonCard} title="Result" value=${inv.result} section="result" />`
        : html`<section class="card" data-section="result"><div class="card-head"><h2>Result</h2></div>
            <div class="quiet-empty">${running ? "Not finished yet." : "No result."}</div></section>`}
    </div>
    <section class="card flush" data-section="logs">
      <div class="card-head padded"><h2>Logs <span class="count">${logs.length}</span></h2>
        ${inv.attempt > 1 ? html`<span class="muted">from attempt ${inv.attempt}</span>` : null}</div>
      ${logs.length === 0
        ? html`<div class="quiet-empty">${running ? "No log lines yet." : "The function logged nothing. Use print() or log.info() in the script."}</div>`
        : html`<table class="table logs">
            <tbody>
              ${logs.map(
                (l, i) => html`<tr key=${i} class=${"log-" + l.level}>
                  <td class="log-time mono">${clockTime(l.time)}</td>
                  <td><span class=${"level level-" + l.level}>${l.level}</span></td>
                  <td class="log-msg">
                    <span class="mono">${l.message}</span>
                    ${l.fields ? html`<span class="log-fields mono">${fieldsText(l.fields)}</span>` : null}
                  </td>
                </tr>`,
              )}
            </tbody>
          </table>`}
    </section>
    ${inv.errors?.length
      ? html`<section class="card" data-section="attempts">
          <div class="card-head"><h2>Attempts</h2></div>
          <ol class="attempts">
            ${inv.errors.map(
              (e) => html`<li><b>Attempt ${e.attempt}</b> <span class="muted">${dateTime(e.at)}</span><pre class="error-text">${e.error}</pre></li>`,
            )}
          </ol>
        </section>`
      : null}
    ${cancelling
      ? html`<${Confirm}
          title=${`Cancel invocation #${inv.id}?`}
          confirmLabel="Cancel invocation"
          onClose=${() => setCancelling(false)}
          onConfirm=${async () => {
            const x = await api("POST", `/v1/invocations/${inv.id}/cancel`);
            setInv(x);
            toast(`Invocation #${inv.id} cancelled`);
          }}
        >
          <p>A queued invocation will never run; a running one is stopped in its sandbox.</p>
        <//>`
      : null}
  </div>`;
}

function fieldsText(fields) {
  if (typeof fields !== "object" || fields === null) return String(fields);
  return Object.entries(fields)
    .map(([k, v]) => `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`)
    .join(" ");
}

function Timeline({ inv }) {
  const now = useNow();
  const wait = inv.wait_ms ?? null;
  // A running attempt has no run_ms yet: show how long it has run so far.
  const running = inv.started_at && !inv.finished_at;
  const run = inv.run_ms ?? (running ? Math.max(0, now - Date.parse(inv.started_at)) : null);
  const total = (wait || 0) + (run || 0);
  const waitPct = total ? Math.max((100 * (wait || 0)) / total, wait ? 2 : 0) : 0;
  return html`<section class="card" data-section="timings">
    <div class="facts">
      <div><span>Created</span><b>${dateTime(inv.created_at)}</b></div>
      <div><span>Started</span><b>${dateTime(inv.started_at)}</b></div>
      <div><span>Finished</span><b>${dateTime(inv.finished_at)}</b></div>
      <div><span>Queued for</span><b>${duration(wait)}</b></div>
      <div><span>${running ? "Running for" : "Ran for"}</span><b>${duration(run)}</b></div>
      <div><span>Attempt</span><b>${inv.attempt} of ${inv.max_attempts}</b></div>
      <div><span>Timeout</span><b>${duration(inv.timeout_ms)}</b></div>
      ${inv.idempotency_key ? html`<div><span>Idempotency key</span><b class="mono">${inv.idempotency_key}</b></div>` : null}
      ${inv.run_at ? html`<div><span>Due at</span><b>${dateTime(inv.run_at)}</b></div>` : null}
    </div>
    ${total
      ? html`<div class="timebar" title=${`queued ${duration(wait)}, ran ${duration(run)}`}>
          <div class="timebar-wait" style=${{ width: `${waitPct}%` }}></div>
          <div class=${"timebar-run status-" + inv.status} style=${{ width: `${100 - waitPct}%` }}></div>
        </div>
        <div class="timebar-legend"><span><i class="sw wait"></i>queued ${duration(wait)}</span><span><i class=${"sw status-" + inv.status}></i>${running ? "running for" : "ran"} ${duration(run)}</span></div>`
      : null}
  </section>`;
}

function headerRows(headers) {
  const entries = Object.entries(headers || {});
  if (!entries.length) return html`<div class="muted small">No headers.</div>`;
  return html`<table class="kv">
    <tbody>${entries.sort().map(([k, v]) => html`<tr><th>${k}</th><td class="mono">${v}</td></tr>`)}</tbody>
  </table>`;
}

function RequestCard({ req }) {
  const query = Object.entries(req.query || {});
  const qs = query.length ? "?" + new URLSearchParams(req.query).toString() : "";
  return html`<section class="card" data-section="request">
    <div class="card-head"><h2>Request</h2></div>
    <div class="request-line mono"><b>${req.method}</b> ${req.path}${qs}</div>
    <details>
      <summary>Headers (${Object.keys(req.headers || {}).length})</summary>
      ${headerRows(req.headers)}
    </details>
    ${req.body !== undefined
      ? html`<pre class="code-block">${pretty(req.body)}</pre>`
      : req.body_base64 !== undefined
        ? html`<div class="muted small">Binary body (${atob(req.body_base64).length} bytes), base64:</div>
            <pre class="code-block">${req.body_base64}</pre>`
        : html`<div class="muted small">No body.</div>`}
  </section>`;
}

function ResponseCard({ res }) {
  return html`<section class="card" data-section="result">
    <div class="card-head"><h2>Response</h2></div>
    <div class="request-line mono"><b class=${res.status >= 400 ? "bad" : "good"}>${res.status}</b></div>
    <details>
      <summary>Headers (${Object.keys(res.headers || {}).length})</summary>
      ${headerRows(res.headers)}
    </details>
    ${res.body !== undefined && res.body !== ""
      ? html`<pre class="code-block">${pretty(res.body)}</pre>`
      : res.body_base64
        ? html`<div class="muted small">Binary body, base64:</div><pre class="code-block">${res.body_base64}</pre>`
        : html`<div class="muted small">No body.</div>`}
  </section>`;
}

function JsonCard({ title, value, section }) {
  const text = pretty(value);
  return html`<section class="card" data-section=${section}>
    <div class="card-head"><h2>${title}</h2><${CopyButton} text=${text} /></div>
    <pre class="code-block">${text}</pre>
  </section>`;
}
