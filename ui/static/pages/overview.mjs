// Overview: throughput and error rate over a recent window, from
// GET /v1/stats, kept fresh by the live invocation feed.
import { icons } from "../components/icons.mjs";
import { html, useEffect, useState } from "../lib/html.mjs";
import { api } from "../lib/api.mjs";
import { onReset, subscribe } from "../lib/live.mjs";
import { duration, isFinal, percent } from "../lib/format.mjs";
import { ThroughputChart } from "../components/chart.mjs";
import { Empty, ErrorBox, PageHeader, Spinner, StatusBadge, Time, useAsync, useDebounced } from "../components/ui.mjs";

const windows = [
  ["15m", "15 minutes"],
  ["1h", "hour"],
  ["6h", "6 hours"],
  ["24h", "24 hours"],
];

export function Overview() {
  const [win, setWin] = useState("1h");
  const stats = useAsync(() => api("GET", "/v1/stats", { query: { window: win } }), [win]);
  const failures = useAsync(() => api("GET", "/v1/invocations", { query: { status: "failed", limit: 6 } }), []);
  const refresh = useDebounced(() => {
    stats.reload();
    failures.reload();
  }, 1000);
  useEffect(() => {
    const offEvents = subscribe((inv) => {
      if (isFinal(inv.status)) refresh();
    });
    const offReset = onReset(refresh);
    return () => {
      offEvents();
      offReset();
    };
  }, []);
  // The last bucket moves on with the clock even when nothing happens.
  useEffect(() => {
    const t = setInterval(() => stats.reload(), 60000);
    return () => clearInterval(t);
  }, [win]);

  const label = windows.find((w) => w[0] === win)[1];
  const s = stats.data;
  return html`<div class="page">
    <${PageHeader} title="Overview" subtitle=${`What your functions did in the last ${label}`}>
      <div class="segmented" role="group" aria-label="Window">
        ${windows.map(
          ([w]) => html`<button class=${w === win ? "active" : ""} onClick=${() => setWin(w)}>${w}</button>`,
        )}
      </div>
    <//>
    <${ErrorBox} error=${stats.error} onRetry=${stats.reload} />
    ${!s && !stats.error ? html`<${Spinner} />` : null}
    ${s && s.functions.length === 0 ? html`<${Welcome} />` : null}
    ${s && s.functions.length > 0 ? html`<${Dashboard} stats=${s} label=${label} failures=${failures} />` : null}
  </div>`;
}

function Welcome() {
  return html`<div class="card welcome">
    <${Empty}
      icon=${icons.functions()}
      title="Deploy your first function"
      action=${html`<a class="btn primary" href="/ui/functions/new">Create a function</a>`}
    >
      <p>
        A function is a Lua script with a <code>handle(req)</code> function. Once saved, it answers HTTP requests at
        <code>/fn/<i>name</i></code>, and every call shows up here with its status, timings and logs.
      </p>
      <pre class="snippet">function handle(req)
  log.info("hello from " .. req.path)
  return "Hello, " .. (req.query.name or "world") .. "!"
end</pre>
    <//>
  </div>`;
}

function Dashboard({ stats: s, label, failures }) {
  const t = s.totals;
  const total = t.succeeded + t.failed + t.timed_out + t.cancelled;
  const errors = t.failed + t.timed_out;
  const perMin = total / ((s.buckets.length * s.bucket_seconds) / 60);
  const busiest = [...s.functions]
    .map((f) => ({ ...f, total: f.succeeded + f.failed + f.timed_out + f.cancelled }))
    .sort((a, b) => b.total - a.total || a.function.localeCompare(b.function))
    .slice(0, 6);
  return html`
    <div class="stat-cards">
      <div class="stat-card">
        <div class="stat-label">Invocations</div>
        <div class="stat-value" data-stat="total">${total.toLocaleString()}</div>
        <div class="stat-sub">${perMin < 10 ? perMin.toFixed(1) : Math.round(perMin)} per minute</div>
      </div>
      <div class="stat-card">
        <div class="stat-label">Error rate</div>
        <div class=${"stat-value" + (errors ? " bad" : "")} data-stat="error-rate">${percent(errors, total)}</div>
        <div class="stat-sub">${errors} failed or timed out</div>
      </div>
      <div class="stat-card">
        <div class="stat-label">Succeeded</div>
        <div class="stat-value good">${t.succeeded.toLocaleString()}</div>
        <div class="stat-sub">${t.cancelled} cancelled</div>
      </div>
      <div class="stat-card">
        <div class="stat-label">Functions</div>
        <div class="stat-value">${s.functions.length}</div>
        <div class="stat-sub">${s.functions.filter((f) => f.succeeded + f.failed + f.timed_out + f.cancelled > 0).length} active in the last ${label}</div>
      </div>
    </div>
    <section class="card">
      <div class="card-head"><h2>Throughput</h2></div>
      ${total === 0
        ? html`<div class="chart-empty">
            <${ThroughputChart} buckets=${s.buckets} bucketSeconds=${s.bucket_seconds} />
            <div class="chart-empty-note">Nothing finished in the last ${label}. Invoke a function and watch it land here.</div>
          </div>`
        : html`<${ThroughputChart} buckets=${s.buckets} bucketSeconds=${s.bucket_seconds} />`}
    </section>
    <div class="two-col">
      <section class="card">
        <div class="card-head"><h2>Functions</h2><a href="/ui/functions">All functions →</a></div>
        <table class="table">
          <thead><tr><th>Function</th><th class="num">Last ${label}</th><th class="num">Errors</th><th>Last invocation</th></tr></thead>
          <tbody>
            ${busiest.map(
              (f) => html`<tr>
                <td><a href=${`/ui/functions/${f.function}`}>${f.function}</a></td>
                <td class="num">${f.total}</td>
                <td class=${"num" + (f.failed + f.timed_out ? " bad" : "")}>${f.failed + f.timed_out}</td>
                <td>
                  ${f.last_invocation
                    ? html`<a class="inline-status" href=${`/ui/invocations/${f.last_invocation.id}`}>
                        <${StatusBadge} status=${f.last_invocation.status} /> <${Time} at=${f.last_invocation.created_at} />
                      </a>`
                    : html`<span class="muted">never invoked</span>`}
                </td>
              </tr>`,
            )}
          </tbody>
        </table>
      </section>
      <section class="card">
        <div class="card-head"><h2>Recent failures</h2><a href="/ui/invocations?status=failed">All failures →</a></div>
        <${ErrorBox} error=${failures.error} compact />
        ${failures.data && failures.data.invocations.length === 0
          ? html`<div class="quiet-empty">No failed invocations. 🎉</div>`
          : null}
        <ul class="failure-list">
          ${(failures.data?.invocations || []).map(
            (inv) => html`<li>
              <a href=${`/ui/invocations/${inv.id}`}>
                <span class="mono">#${inv.id}</span> <b>${inv.function}</b>
                <span class="failure-error">${inv.error || "failed"}</span>
                <span class="muted"><${Time} at=${inv.created_at} /> · ${duration(inv.run_ms)}</span>
              </a>
            </li>`,
          )}
        </ul>
      </section>
    </div>
  `;
}
