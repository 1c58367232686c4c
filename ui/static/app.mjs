// The dashboard: sign-in gate, layout and routes.
import { html, render, useEffect, useState } from "./lib/html.mjs";
import { auth, onAuthChange, probe, signIn, signInMessage, signOut } from "./lib/api.mjs";
import { liveMode, onLiveMode, pollInterval, subscribe } from "./lib/live.mjs";
import { match, useLocation } from "./lib/router.mjs";
import { ErrorBox, Toasts, Spinner } from "./components/ui.mjs";
import { icons } from "./components/icons.mjs";
import { Overview } from "./pages/overview.mjs";
import { Functions } from "./pages/functions.mjs";
import { FunctionPage } from "./pages/function.mjs";
import { Invocations } from "./pages/invocations.mjs";
import { InvocationPage } from "./pages/invocation.mjs";
import { Schedules } from "./pages/schedules.mjs";
import { Keys } from "./pages/keys.mjs";

const nav = [
  { href: "/ui/", label: "Overview", icon: icons.overview, active: (p) => p === "/" },
  { href: "/ui/functions", label: "Functions", icon: icons.functions, active: (p) => p.startsWith("/functions") },
  { href: "/ui/invocations", label: "Invocations", icon: icons.invocations, active: (p) => p.startsWith("/invocations") },
  { href: "/ui/schedules", label: "Schedules", icon: icons.schedules, active: (p) => p.startsWith("/schedules") },
  { href: "/ui/keys", label: "API keys", icon: icons.keys, active: (p) => p.startsWith("/keys") },
];

const routes = [
  ["/", () => html`<${Overview} />`],
  ["/functions", () => html`<${Functions} />`],
  ["/functions/new", () => html`<${FunctionPage} isNew=${true} />`],
  ["/functions/:name", (p) => html`<${FunctionPage} key=${p.name} name=${p.name} />`],
  ["/invocations", () => html`<${Invocations} />`],
  ["/invocations/:id", (p) => html`<${InvocationPage} key=${p.id} id=${p.id} />`],
  ["/schedules", () => html`<${Schedules} />`],
  ["/keys", () => html`<${Keys} />`],
];

function useAuth() {
  const [, setTick] = useState(0);
  useEffect(() => onAuthChange(() => setTick((n) => n + 1)), []);
  return auth;
}

function LiveIndicator() {
  const [mode, setMode] = useState(liveMode());
  useEffect(() => {
    // Keep the shared stream open for as long as the app runs, so the
    // indicator tells the truth on every page.
    const unsubscribe = subscribe(() => {});
    const off = onLiveMode(setMode);
    setMode(liveMode());
    return () => {
      off();
      unsubscribe();
    };
  }, []);
  const text = {
    live: "Live",
    polling: `Polling every ${pollInterval / 1000} s`,
    connecting: "Connecting…",
    off: "Offline",
  }[mode];
  const title = {
    live: "Updates arrive as they happen, streamed from /v1/events.",
    polling: "The event stream is not available; the dashboard re-reads the invocation list instead.",
    connecting: "Opening the event stream…",
    off: "",
  }[mode];
  return html`<div class=${"live-indicator " + mode} data-live=${mode} title=${title}>
    <span class="live-dot"></span>${text}
  </div>`;
}

function Sidebar({ path }) {
  const a = useAuth();
  return html`<aside class="sidebar">
    <a class="brand" href="/ui/">
      <img src="/ui/favicon.svg" alt="" width="28" height="28" />
      <span>PiCloud</span>
    </a>
    <nav class="nav">
      ${nav.map(
        (n) => html`<a class=${"nav-item" + (n.active(path) ? " active" : "")} href=${n.href}>
          <span class="nav-icon">${n.icon()}</span>${n.label}
        </a>`,
      )}
    </nav>
    <div class="sidebar-foot">
      <${LiveIndicator} />
      ${a.mode === "off"
        ? html`<div class="who" title="picloud dev runs without API keys; serve and api require them.">Auth off (dev)</div>`
        : html`<div class="who">
            <span>Signed in with ${a.scope === "admin" ? "an admin" : "an invoke"} key</span>
            <button class="link-btn" onClick=${() => signOut()}>Sign out</button>
          </div>`}
      <div class="links">
        <a href="/docs" target="_blank" rel="noopener">API docs</a>
        <a href="/openapi.yaml" target="_blank" rel="noopener">OpenAPI</a>
      </div>
    </div>
  </aside>`;
}

function SignIn() {
  const [key, setKey] = useState("");
  const [remember, setRemember] = useState(false);
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const submit = async (e) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await signIn(key, remember);
    } catch (err) {
      setError(err);
      setBusy(false);
    }
  };
  return html`<div class="signin">
    <form class="signin-card" onSubmit=${submit}>
      <div class="signin-brand"><img src="/ui/favicon.svg" alt="" width="40" height="40" /><span>PiCloud</span></div>
      <h1>Sign in with an API key</h1>
      <p class="muted">
        This server requires a key for its API. The dashboard keeps it in this browser tab, or on this device if you
        ask it to, and sends it only to this server.
      </p>
      ${signInMessage ? html`<div class="notice warn">${signInMessage}</div>` : null}
      <label class="field">
        <span class="field-label">API key</span>
        <input
          name="key"
          type="password"
          class="mono"
          autocomplete="off"
          spellcheck="false"
          placeholder="pic_…"
          value=${key}
          onInput=${(e) => setKey(e.target.value)}
          autofocus
        />
      </label>
      <label class="check">
        <input type="checkbox" checked=${remember} onChange=${(e) => setRemember(e.target.checked)} />
        Remember on this device
      </label>
      <${ErrorBox} error=${error} compact />
      <button class="btn primary block" type="submit" disabled=${busy}>${busy ? "Checking…" : "Sign in"}</button>
      <p class="hint">
        No key yet? On the server, run <code>picloud keys create --scope admin</code>. An admin key manages
        everything; an invoke key can only call functions and read invocations.
      </p>
    </form>
  </div>`;
}

function NotFound() {
  return html`<div class="page"><div class="empty">
    <div class="empty-icon">?</div>
    <h3>No such page</h3>
    <div class="empty-body">The dashboard has no page at this address.</div>
    <div class="empty-action"><a class="btn primary" href="/ui/">Go to the overview</a></div>
  </div></div>`;
}

function App() {
  const a = useAuth();
  const loc = useLocation();
  const [bootError, setBootError] = useState(null);
  useEffect(() => {
    probe().catch(setBootError);
  }, []);

  if (bootError) {
    return html`<div class="signin"><div class="signin-card">
      <h1>The API did not answer</h1>
      <${ErrorBox} error=${bootError} onRetry=${() => location.reload()} />
    </div></div>`;
  }
  if (a.mode === "unknown") return html`<div class="boot"><${Spinner} label="Connecting to PiCloud…" /></div>`;
  if (a.mode === "none") return html`<${SignIn} />`;

  let page = null;
  for (const [pattern, view] of routes) {
    const params = match(pattern, loc.path);
    if (params) {
      page = view(params);
      break;
    }
  }
  return html`<div class="layout">
    <${Sidebar} path=${loc.path} />
    <main class="main">
      ${a.scope === "invoke"
        ? html`<div class="notice warn banner">
            This key has the <b>invoke</b> scope: it can call functions and read invocations. Managing functions,
            schedules and keys needs an admin key.
          </div>`
        : null}
      ${page || html`<${NotFound} />`}
    </main>
    <${Toasts} />
  </div>`;
}

render(html`<${App} />`, document.getElementById("app"));
