// One function: the Lua editor with compile errors at their line as you
// type, the invoke panel beside it, its recent invocations, its versions and
// its settings. New functions are made on the same page.
import { html, useEffect, useRef, useState } from "../lib/html.mjs";
import { api, auth } from "../lib/api.mjs";
import { bytes, dateTime } from "../lib/format.mjs";
import { navigate } from "../lib/router.mjs";
import { Editor, syntaxError } from "../components/editor.mjs";
import { InvokePanel } from "../components/invoke.mjs";
import { Confirm, CopyButton, Empty, ErrorBox, Field, PageHeader, Spinner, Tabs, Time, toast, useAsync, useDebounced } from "../components/ui.mjs";
import { InvocationTable, useLiveInvocations } from "./invocations.mjs";

const template = `-- handle(req) answers every request to /fn/{name}.
-- req: method, path, query, headers, body, payload, trigger, attempt
function handle(req)
  local name = req.query.name or (req.payload and req.payload.name) or "world"
  log.info("greeting " .. name)
  return "Hello, " .. name .. "!"
end
`;

const namePattern = /^[a-z][a-z0-9_-]{0,62}$/;

// The options PUT takes; PUT replaces them all, so the editor sends back
// what it read, including those it has no field for (log_retention_hours).
const optionKeys = ["timeout_ms", "max_attempts", "max_concurrency", "retry_backoff_ms", "max_instructions", "auth", "http_allow",
  "log_retention_hours", "expose_errors"];

function optionsOf(fn) {
  const o = {};
  for (const k of optionKeys) if (fn?.[k] !== undefined && fn[k] !== null) o[k] = fn[k];
  return o;
}

export function FunctionPage({ name, isNew = false }) {
  const loaded = useAsync(() => (isNew ? Promise.resolve(null) : api("GET", `/v1/functions/${name}`)), [name, isNew]);
  if (loaded.error?.status === 404) {
    return html`<div class="page">
      <${PageHeader} title=${name} back=${{ href: "/ui/functions", label: "Functions" }} />
      <div class="card"><${Empty}
        icon="?"
        title=${`There is no function called ${name}`}
        action=${html`<a class="btn primary" href="/ui/functions/new">Create a function</a>`}
      >It may have been deleted. Its invocations are kept: <a href=${`/ui/invocations?function=${name}`}>see them</a>.<//></div>
    </div>`;
  }
  if (loaded.error) {
    return html`<div class="page"><${PageHeader} title=${name} back=${{ href: "/ui/functions", label: "Functions" }} />
      <${ErrorBox} error=${loaded.error} onRetry=${loaded.reload} /></div>`;
  }
  if (loaded.loading && !isNew) return html`<div class="page"><${Spinner} /></div>`;
  return html`<${FunctionEditor} initial=${loaded.data} isNew=${isNew} />`;
}

function FunctionEditor({ initial, isNew }) {
  const [fn, setFn] = useState(initial);
  const [name, setName] = useState(initial?.name || "");
  const [source, setSource] = useState(initial?.source ?? template);
  const [savedSource, setSavedSource] = useState(initial?.source ?? null);
  const [options, setOptions] = useState(optionsOf(initial));
  const [savedOptions, setSavedOptions] = useState(JSON.stringify(optionsOf(initial)));
  const [docKey, setDocKey] = useState(0);
  const [check, setCheck] = useState({ state: "idle" }); // idle | checking | ok | error
  const [saveError, setSaveError] = useState(null);
  const [saving, setSaving] = useState(false);
  const [tab, setTab] = useState("code");
  const [deleting, setDeleting] = useState(false);
  const checkSeq = useRef(0);

  const dirty = isNew || source !== savedSource || JSON.stringify(options) !== savedOptions;
  const nameError = isNew && name && !namePattern.test(name) ? "Lower-case letters, digits, - and _; starting with a letter." : "";
  const target = isNew ? name : fn.name;

  useEffect(() => {
    const warn = (e) => {
      if (dirty && !isNew) {
        e.preventDefault();
        e.returnValue = "";
      }
    };
    window.addEventListener("beforeunload", warn);
    return () => window.removeEventListener("beforeunload", warn);
  }, [dirty, isNew]);

  // Compile on the server as the user types: validate stores nothing and
  // answers with the same 422 a save would.
  const runCheck = useDebounced(async (src) => {
    const n = ++checkSeq.current;
    const as = namePattern.test(target) ? target : "draft";
    setCheck((c) => ({ ...c, state: "checking" }));
    try {
      const res = await api("POST", `/v1/functions/${as}/validate`, { body: { source: src, ...options } });
      if (n === checkSeq.current) setCheck({ state: "ok", version: res.version });
    } catch (err) {
      if (n !== checkSeq.current) return;
      const se = syntaxError(err);
      setCheck(se ? { state: "error", error: se } : { state: "failed", failure: err });
    }
  }, 450);

  useEffect(() => {
    if (auth.scope === "admin") runCheck(source);
  }, [source]);

  const save = async () => {
    if (saving) return;
    if (isNew && !namePattern.test(name)) {
      setSaveError({ title: "", detail: name ? nameError : "Give the function a name first: it becomes its URL, /fn/{name}." });
      return;
    }
    setSaving(true);
    setSaveError(null);
    try {
      const saved = await api("PUT", `/v1/functions/${target}`, { body: { source, ...options } });
      const changed = !fn || saved.version !== fn.version;
      setFn(saved);
      setSavedSource(saved.source ?? source);
      setOptions(optionsOf(saved));
      setSavedOptions(JSON.stringify(optionsOf(saved)));
      setCheck({ state: "ok", version: saved.version });
      toast(isNew ? `Created ${saved.name}` : changed ? `Saved ${saved.name} as version ${saved.version}` : `Saved ${saved.name}; the source is unchanged`);
      if (isNew) navigate(`/functions/${saved.name}`, { replace: true });
    } catch (err) {
      const se = syntaxError(err);
      if (se) setCheck({ state: "error", error: se });
      setSaveError(err);
    } finally {
      setSaving(false);
    }
  };

  const loadVersion = (v) => {
    setSource(v.source);
    setDocKey((k) => k + 1);
    setTab("code");
    toast(`Version ${v.version} is in the editor; save to make it current`, "info");
  };

  const statusLine = () => {
    if (check.state === "error")
      return html`<span class="compile bad" data-compile="error">✗ Line ${check.error.line}: ${check.error.message}</span>`;
    if (check.state === "failed") return html`<span class="compile bad" data-compile="failed">${check.failure.detail || check.failure.message}</span>`;
    if (check.state === "checking") return html`<span class="compile muted" data-compile="checking">Checking…</span>`;
    if (check.state === "ok") return html`<span class="compile good" data-compile="ok">✓ Compiles</span>`;
    return null;
  };

  const tabs = [
    { id: "code", label: "Code" },
    ...(isNew ? [] : [{ id: "versions", label: "Versions", count: fn.version }]),
    { id: "settings", label: "Settings" },
  ];

  return html`<div class="page function-page">
    <${PageHeader}
      back=${{ href: "/ui/functions", label: "Functions" }}
      title=${isNew
        ? html`<input
            class="name-input mono"
            name="function-name"
            placeholder="function-name"
            value=${name}
            onInput=${(e) => setName(e.target.value.trim())}
            aria-label="Function name"
            autofocus
          />`
        : html`${fn.name} <span class="version">v${fn.version}</span>`}
      subtitle=${isNew
        ? nameError
          ? html`<span class="bad">${nameError}</span>`
          : html`It will answer at <code>/fn/${name || "{name}"}</code>`
        : html`<code class="endpoint">${location.origin}${fn.url}</code> <${CopyButton} text=${location.origin + fn.url} label="Copy URL" />
            <span class="sep">·</span><span>updated <${Time} at=${fn.updated_at} /></span>`}
    >
      ${!isNew ? html`<button class="btn danger-outline" onClick=${() => setDeleting(true)}>Delete</button>` : null}
      <button class="btn primary" data-action="save" disabled=${saving || (!dirty && !isNew)} onClick=${save} title="Ctrl+S / ⌘S">
        ${saving ? "Saving…" : isNew ? "Create function" : dirty ? "Save" : "Saved"}
      </button>
    <//>
    <${Tabs} tabs=${tabs} active=${tab} onSelect=${setTab} />
    <div class=${tab === "code" ? "" : "hidden"}>
      <div class="editor-grid">
        <section class="card flush editor-card">
          <${Editor}
            value=${source}
            docKey=${docKey}
            onChange=${setSource}
            onSave=${save}
            error=${check.state === "error" ? check.error : null}
            readOnly=${auth.scope !== "admin"}
            visible=${tab === "code"}
          />
          <div class="editor-status">
            ${statusLine()}
            <span class="muted">${dirty && !isNew ? "Unsaved changes · " : ""}Lua 5.2 · Ctrl+S saves</span>
          </div>
          ${saveError && !syntaxError(saveError) ? html`<div class="padded"><${ErrorBox} error=${saveError} compact /></div>` : null}
        </section>
        <${InvokePanel} fn=${isNew ? null : fn} dirty=${dirty} />
      </div>
      ${isNew ? null : html`<${RecentInvocations} name=${fn.name} />`}
    </div>
    ${tab === "versions" ? html`<${Versions} fn=${fn} onLoad=${loadVersion} />` : null}
    ${tab === "settings" ? html`<${Settings} options=${options} setOptions=${setOptions} dirty=${dirty} onSave=${save} saving=${saving} />` : null}
    ${deleting
      ? html`<${Confirm}
          title=${`Delete ${fn.name}?`}
          confirmLabel="Delete function"
          onClose=${() => setDeleting(false)}
          onConfirm=${async () => {
            await api("DELETE", `/v1/functions/${fn.name}`);
            toast(`Deleted ${fn.name}`);
            navigate("/functions");
          }}
        >
          <p>The function goes away with its ${fn.version} version${fn.version === 1 ? "" : "s"}, its schedules, configuration and
          key-value data, and <code>/fn/${fn.name}</code> stops answering. Its invocations stay in the history; queued ones fail.</p>
        <//>`
      : null}
  </div>`;
}

function RecentInvocations({ name }) {
  const live = useLiveInvocations({ fn: name, limit: 8 });
  return html`<section class="card flush recent">
    <div class="card-head padded">
      <h2>Recent invocations</h2>
      <a href=${`/ui/invocations?function=${name}`}>All invocations of ${name} →</a>
    </div>
    <${ErrorBox} error=${live.error} compact />
    ${live.rows === null ? html`<${Spinner} />` : null}
    ${live.rows && live.rows.length === 0
      ? html`<div class="quiet-empty">Not invoked yet. Send a request from the panel above; it will show up here.</div>`
      : null}
    ${live.rows && live.rows.length > 0
      ? html`<${InvocationTable} rows=${live.rows.slice(0, 8)} fresh=${live.fresh} showFunction=${false} />`
      : null}
  </section>`;
}

function Versions({ fn, onLoad }) {
  const list = useAsync(() => api("GET", `/v1/functions/${fn.name}/versions`), [fn.name, fn.version]);
  const [selected, setSelected] = useState(fn.version);
  const version = useAsync(() => api("GET", `/v1/functions/${fn.name}/versions/${selected}`), [fn.name, selected]);
  if (list.error) return html`<${ErrorBox} error=${list.error} onRetry=${list.reload} />`;
  if (!list.data) return html`<${Spinner} />`;
  return html`<div class="versions">
    <section class="card flush version-list">
      <ul>
        ${list.data.versions.map(
          (v) => html`<li key=${v.version}>
            <button class=${v.version === selected ? "active" : ""} onClick=${() => setSelected(v.version)}>
              <span class="version">v${v.version}</span>
              ${v.version === fn.version ? html`<span class="tag current">current</span>` : null}
              <span class="muted small" title=${dateTime(v.created_at)}><${Time} at=${v.created_at} /> · ${bytes(v.source_bytes)} · ${v.sha256.slice(0, 8)}</span>
            </button>
          </li>`,
        )}
      </ul>
    </section>
    <section class="card flush">
      <div class="card-head padded">
        <h2>Version ${selected}</h2>
        ${version.data && selected !== fn.version && auth.scope === "admin"
          ? html`<button class="btn" onClick=${() => onLoad(version.data)}>Open in editor</button>`
          : null}
      </div>
      <${ErrorBox} error=${version.error} compact />
      ${version.data ? html`<${Editor} value=${version.data.source} docKey=${selected} readOnly=${true} minHeight=${300} />` : html`<${Spinner} />`}
    </section>
  </div>`;
}

function Settings({ options, setOptions, dirty, onSave, saving }) {
  const num = (k) => (e) => {
    const v = e.target.value.trim();
    setOptions((o) => {
      const n = { ...o };
      if (v === "") delete n[k];
      else n[k] = Number(v);
      return n;
    });
  };
  const numberField = (k, label, hint, placeholder) => html`<${Field} label=${label} hint=${hint}>
    <input type="number" name=${k} min="0" value=${options[k] ?? ""} placeholder=${placeholder} onInput=${num(k)} />
  <//>`;
  return html`<section class="card settings">
    <div class="settings-grid">
      ${numberField("timeout_ms", "Timeout (ms)", "Wall-clock limit of one attempt.", "10000")}
      ${numberField("max_instructions", "Instruction budget", "Lua VM instructions per attempt; past it the attempt times out.", "40000000")}
      ${numberField("max_attempts", "Max attempts", "For asynchronous invocations (API async, schedules, SQL); /fn runs once.", "1")}
      ${numberField("retry_backoff_ms", "Retry backoff (ms)", "Delay before the second attempt; it doubles after each.", "1000")}
      ${numberField("max_concurrency", "Max concurrency", "How many may run at once across all workers. Empty: unlimited.", "unlimited")}
      <${Field} label="Who may call /fn" hint="Key: callers need an API key of either scope.">
        <select name="auth" value=${options.auth || "public"} onChange=${(e) => setOptions((o) => ({ ...o, auth: e.target.value }))}>
          <option value="public">Anyone (public)</option>
          <option value="key">Only with an API key</option>
        </select>
      <//>
      <${Field} label="Errors shown to callers" hint="What /fn answers a caller without an API key when the script fails; callers with a key always see the error.">
        <select name="expose_errors" value=${options.expose_errors ? "yes" : "no"} onChange=${(e) => setOptions((o) => {
          const n = { ...o };
          if (e.target.value === "yes") n.expose_errors = true;
          else delete n.expose_errors;
          return n;
        })}>
          <option value="no">Hidden: a generic 500 with the invocation id</option>
          <option value="yes">The error text (expose_errors)</option>
        </select>
      <//>
      <${Field} label="Outbound HTTP allow-list" hint="Hosts http.request may reach, one per line: api.example.com, *.example.org, localhost:9000.">
        <textarea
          name="http_allow"
          rows="4"
          class="mono"
          value=${(options.http_allow || []).join("\n")}
          onInput=${(e) => {
            const hosts = e.target.value.split(/\s+/).filter(Boolean);
            setOptions((o) => {
              const n = { ...o };
              if (hosts.length) n.http_allow = hosts;
              else delete n.http_allow;
              return n;
            });
          }}
        ></textarea>
      <//>
    </div>
    <div class="settings-foot">
      <span class="muted">Settings are saved together with the code. Empty fields take the platform defaults.</span>
      <button class="btn primary" disabled=${saving || !dirty} onClick=${onSave}>${saving ? "Saving…" : "Save"}</button>
    </div>
  </section>`;
}
