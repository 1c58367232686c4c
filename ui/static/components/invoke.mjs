// The invoke panel: call a function over HTTP (/fn/{name}/path) or with a
// JSON payload (POST /v1/functions/{name}/invocations), and show the answer
// next to the invocation it created.
import { html, useEffect, useState } from "../lib/html.mjs";
import { api, auth, authHeaders } from "../lib/api.mjs";
import { watchInvocation } from "../lib/live.mjs";
import { duration, isFinal, pretty } from "../lib/format.mjs";
import { ErrorBox, StatusBadge } from "./ui.mjs";

const methods = ["GET", "POST", "PUT", "PATCH", "DELETE"];

function parseHeaders(text) {
  const headers = {};
  const bad = [];
  for (const line of text.split("\n")) {
    if (!line.trim()) continue;
    const i = line.indexOf(":");
    if (i <= 0) bad.push(line.trim());
    else headers[line.slice(0, i).trim()] = line.slice(i + 1).trim();
  }
  return { headers, bad };
}

export function InvokePanel({ fn, dirty }) {
  const [mode, setMode] = useState("http");
  const [method, setMethod] = useState("GET");
  const [path, setPath] = useState("?name=Ada");
  const [headerText, setHeaderText] = useState("");
  const [body, setBody] = useState("");
  const [payload, setPayload] = useState('{\n  "name": "Ada"\n}');
  const [async, setAsync] = useState(false);
  const [sendKey, setSendKey] = useState(true);
  const [busy, setBusy] = useState(false);
  const [result, setResult] = useState(null);
  const [error, setError] = useState(null);

  if (!fn) {
    return html`<section class="card invoke-panel disabled">
      <div class="card-head"><h2>Invoke</h2></div>
      <div class="quiet-empty">Create the function first; then call it from here and watch its invocations arrive.</div>
    </section>`;
  }
  const needsKey = fn.auth === "key" && auth.mode === "key";

  const sendHTTP = async () => {
    const { headers, bad } = parseHeaders(headerText);
    if (bad.length) throw new Error(`Headers must be "Name: value", one per line; not: ${bad[0]}`);
    if (needsKey && sendKey && !Object.keys(headers).some((h) => h.toLowerCase() === "authorization")) {
      Object.assign(headers, authHeaders());
    }
    let p = path.trim();
    if (p && !p.startsWith("/") && !p.startsWith("?")) p = "/" + p;
    const withBody = !["GET", "HEAD"].includes(method) && body !== "";
    const started = performance.now();
    const res = await fetch(`/fn/${fn.name}${p}`, { method, headers, body: withBody ? body : undefined });
    const text = await res.text();
    const ms = performance.now() - started;
    const id = res.headers.get("X-Invocation-Id");
    setResult({
      kind: "http",
      status: res.status,
      statusText: res.statusText,
      headers: [...res.headers.entries()],
      contentType: res.headers.get("Content-Type") || "",
      body: text,
      ms,
      id,
    });
  };

  const sendJSON = async () => {
    let value;
    try {
      value = payload.trim() ? JSON.parse(payload) : undefined;
    } catch (err) {
      throw new Error(`The payload is not valid JSON: ${err.message}`);
    }
    const started = performance.now();
    const inv = await api("POST", `/v1/functions/${fn.name}/invocations`, {
      body: { ...(value !== undefined ? { payload: value } : {}), ...(async ? { async: true } : {}) },
    });
    setResult({ kind: "json", ms: performance.now() - started, id: String(inv.id), invocation: inv });
  };

  const send = async (e) => {
    e?.preventDefault();
    setBusy(true);
    setError(null);
    setResult(null);
    try {
      await (mode === "http" ? sendHTTP() : sendJSON());
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };

  return html`<section class="card invoke-panel">
    <div class="card-head">
      <h2>Invoke</h2>
      <div class="segmented small" role="group" aria-label="How to call">
        <button class=${mode === "http" ? "active" : ""} data-mode="http" onClick=${() => setMode("http")}>HTTP request</button>
        <button class=${mode === "json" ? "active" : ""} data-mode="json" onClick=${() => setMode("json")}>JSON payload</button>
      </div>
    </div>
    ${dirty ? html`<div class="notice info small">Calls run the saved version, not the unsaved edits.</div>` : null}
    <form onSubmit=${send}>
      ${mode === "http"
        ? html`<div class="request-row">
              <select name="method" value=${method} onChange=${(e) => setMethod(e.target.value)} aria-label="Method">
                ${methods.map((m) => html`<option>${m}</option>`)}
              </select>
              <div class="url-input">
                <span class="url-prefix mono">/fn/${fn.name}</span>
                <input name="path" class="mono" value=${path} onInput=${(e) => setPath(e.target.value)} placeholder="/path?query=value" aria-label="Path and query" />
              </div>
            </div>
            <label class="field">
              <span class="field-label">Headers <span class="muted">one per line, Name: value</span></span>
              <textarea name="headers" rows="2" class="mono" value=${headerText} onInput=${(e) => setHeaderText(e.target.value)} placeholder="Content-Type: application/json"></textarea>
            </label>
            ${method !== "GET"
              ? html`<label class="field">
                  <span class="field-label">Body</span>
                  <textarea name="body" rows="4" class="mono" value=${body} onInput=${(e) => setBody(e.target.value)}></textarea>
                </label>`
              : null}
            ${fn.auth === "key"
              ? html`<label class="check">
                  <input type="checkbox" checked=${sendKey && needsKey} disabled=${!needsKey} onChange=${(e) => setSendKey(e.target.checked)} />
                  ${needsKey ? "Send my API key (this function requires one)" : "This function requires an API key (auth is off here)"}
                </label>`
              : null}`
        : html`<label class="field">
              <span class="field-label">Payload <span class="muted">JSON; the script sees it as req.payload</span></span>
              <textarea name="payload" rows="6" class="mono" value=${payload} onInput=${(e) => setPayload(e.target.value)}></textarea>
            </label>
            <label class="check">
              <input type="checkbox" checked=${async} onChange=${(e) => setAsync(e.target.checked)} />
              Asynchronous: queue it and answer at once (retries up to the function's max attempts)
            </label>`}
      <div class="invoke-actions">
        <button class="btn primary" type="submit" data-action="invoke" disabled=${busy}>${busy ? "Calling…" : "Send"}</button>
        <span class="muted small">${mode === "http" ? `${method} ${fn.url}${path.startsWith("?") || path.startsWith("/") || !path ? path : "/" + path}` : `POST /v1/functions/${fn.name}/invocations`}</span>
      </div>
    </form>
    <${ErrorBox} error=${error} compact />
    ${result ? html`<${InvokeResult} result=${result} />` : null}
  </section>`;
}

function InvokeResult({ result }) {
  const [inv, setInv] = useState(result.invocation || null);
  useEffect(() => {
    if (!result.id) return;
    if (result.invocation && isFinal(result.invocation.status)) return;
    // The /fn answer is out before the row has its logs everywhere it is
    // read; follow the invocation until it is final.
    return watchInvocation(result.id, {
      onInvocation: (x) => {
        if (isFinal(x.status)) api("GET", `/v1/invocations/${result.id}`).then(setInv, () => setInv(x));
        else setInv(x);
      },
    });
  }, [result.id]);

  return html`<div class="invoke-result" data-invoke-result>
    ${result.kind === "http"
      ? html`<div class="response-head">
            <span class=${"http-status " + (result.status >= 500 ? "bad" : result.status >= 400 ? "warn" : "good")} data-http-status=${result.status}>
              ${result.status} ${result.statusText}
            </span>
            <span class="muted small">${duration(result.ms)} round trip</span>
          </div>
          <details>
            <summary>Response headers (${result.headers.length})</summary>
            <table class="kv"><tbody>${result.headers.map(([k, v]) => html`<tr><th>${k}</th><td class="mono">${v}</td></tr>`)}</tbody></table>
          </details>
          ${result.body
            ? html`<pre class="code-block response-body">${result.contentType.includes("json") ? pretty(result.body) : result.body}</pre>`
            : html`<div class="muted small">Empty body.</div>`}`
      : html`<div class="response-head">
            <span class="muted small">${duration(result.ms)} round trip</span>
          </div>
          ${inv?.result !== undefined
            ? html`<div class="field-label">Result</div><pre class="code-block response-body">${pretty(inv.result)}</pre>`
            : null}`}
    ${result.id
      ? html`<a class="invocation-chip" href=${`/ui/invocations/${result.id}`} data-invocation-link=${result.id}>
          <span>Invocation <b class="mono">#${result.id}</b></span>
          ${inv ? html`<${StatusBadge} status=${inv.status} />` : null}
          ${inv?.run_ms !== undefined && inv?.run_ms !== null ? html`<span class="muted small">ran ${duration(inv.run_ms)}</span>` : null}
          ${inv?.logs?.length ? html`<span class="muted small">${inv.logs.length} log line${inv.logs.length === 1 ? "" : "s"}</span>` : null}
          <span class="chip-open">Open →</span>
        </a>`
      : html`<div class="muted small">No X-Invocation-Id header: the request was refused before an invocation was made.</div>`}
    ${inv?.error ? html`<pre class="error-text">${inv.error}</pre>` : null}
    ${inv?.logs?.length
      ? html`<div class="mini-logs">
          ${inv.logs.slice(0, 6).map((l) => html`<div><span class=${"level level-" + l.level}>${l.level}</span> <span class="mono">${l.message}</span></div>`)}
          ${inv.logs.length > 6 ? html`<div class="muted small">…and ${inv.logs.length - 6} more</div>` : null}
        </div>`
      : null}
  </div>`;
}
