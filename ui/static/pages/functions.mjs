// Functions: every function with its latest invocation and the last hour's
// counts, from GET /v1/functions and GET /v1/stats.
import { icons } from "../components/icons.mjs";
import { html, useEffect } from "../lib/html.mjs";
import { api } from "../lib/api.mjs";
import { subscribe } from "../lib/live.mjs";
import { percent } from "../lib/format.mjs";
import { Empty, ErrorBox, PageHeader, Spinner, StatusBadge, Time, useAsync, useDebounced } from "../components/ui.mjs";

export function Functions() {
  const fns = useAsync(() => api("GET", "/v1/functions"), []);
  const stats = useAsync(() => api("GET", "/v1/stats", { query: { window: "1h" } }), []);
  const refresh = useDebounced(() => stats.reload(), 700);
  useEffect(() => subscribe(() => refresh()), []);

  const byName = new Map((stats.data?.functions || []).map((f) => [f.function, f]));
  const list = fns.data?.functions;
  return html`<div class="page">
    <${PageHeader} title="Functions" subtitle="Lua scripts, each with its own HTTP endpoint under /fn/">
      <a class="btn primary" href="/ui/functions/new">New function</a>
    <//>
    <${ErrorBox} error=${fns.error} onRetry=${fns.reload} />
    ${fns.loading && !list ? html`<${Spinner} />` : null}
    ${list && list.length === 0
      ? html`<div class="card"><${Empty}
          icon=${icons.functions()}
          title="No functions yet"
          action=${html`<a class="btn primary" href="/ui/functions/new">Create your first function</a>`}
        >
          <p>Write a Lua <code>handle(req)</code>, save it, and it answers at <code>/fn/<i>name</i></code> at once.</p>
          <p class="muted">From a terminal: <code>picloud fn deploy hello hello.lua</code>, or PUT /v1/functions/hello.</p>
        <//></div>`
      : null}
    ${list && list.length > 0
      ? html`<div class="card flush">
          <table class="table clickable" data-table="functions">
            <thead>
              <tr>
                <th>Name</th>
                <th>Version</th>
                <th>Last invocation</th>
                <th class="num">Last hour</th>
                <th class="num">Error rate</th>
                <th>Endpoint</th>
                <th>Updated</th>
              </tr>
            </thead>
            <tbody>
              ${list.map((f) => {
                const s = byName.get(f.name);
                const total = s ? s.succeeded + s.failed + s.timed_out + s.cancelled : 0;
                const errors = s ? s.failed + s.timed_out : 0;
                return html`<tr key=${f.name} data-function=${f.name}>
                  <td><a class="strong" href=${`/ui/functions/${f.name}`}>${f.name}</a>
                    ${f.auth === "key" ? html`<span class="tag" title="Callers of /fn need an API key">key</span>` : null}</td>
                  <td><span class="version">v${f.version}</span></td>
                  <td>
                    ${s?.last_invocation
                      ? html`<a class="inline-status" href=${`/ui/invocations/${s.last_invocation.id}`}>
                          <${StatusBadge} status=${s.last_invocation.status} />
                          <${Time} at=${s.last_invocation.created_at} />
                        </a>`
                      : html`<span class="muted">never invoked</span>`}
                  </td>
                  <td class="num">${s ? total : "…"}</td>
                  <td class=${"num" + (errors ? " bad" : "")}>${s ? percent(errors, total) : "…"}</td>
                  <td><code class="endpoint">${f.url}</code></td>
                  <td><${Time} at=${f.updated_at} /></td>
                </tr>`;
              })}
            </tbody>
          </table>
        </div>`
      : null}
  </div>`;
}
