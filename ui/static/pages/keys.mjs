// API keys: GET/POST /v1/keys, DELETE /v1/keys/{id}. A new key is shown
// once, right after it is made: the server keeps only its hash.
import { icons } from "../components/icons.mjs";
import { html, useState } from "../lib/html.mjs";
import { api, auth } from "../lib/api.mjs";
import { dateTime } from "../lib/format.mjs";
import { Confirm, CopyButton, Empty, ErrorBox, Field, PageHeader, Spinner, Time, toast, useAsync } from "../components/ui.mjs";

export function Keys() {
  const list = useAsync(() => api("GET", "/v1/keys"), []);
  const [name, setName] = useState("");
  const [scope, setScope] = useState("invoke");
  const [created, setCreated] = useState(null);
  const [createError, setCreateError] = useState(null);
  const [busy, setBusy] = useState(false);
  const [revoking, setRevoking] = useState(null);
  const [showRevoked, setShowRevoked] = useState(false);

  const create = async (e) => {
    e.preventDefault();
    setBusy(true);
    setCreateError(null);
    try {
      const k = await api("POST", "/v1/keys", { body: { name: name.trim(), scope } });
      setCreated(k);
      setName("");
      list.reload();
    } catch (err) {
      setCreateError(err);
    } finally {
      setBusy(false);
    }
  };

  const keys = list.data?.keys || [];
  const visible = showRevoked ? keys : keys.filter((k) => !k.revoked_at);
  const revokedCount = keys.length - keys.filter((k) => !k.revoked_at).length;
  return html`<div class="page">
    <${PageHeader} title="API keys" subtitle="Keys for scripts, CI and people. admin manages everything; invoke calls functions and reads invocations." />
    ${auth.mode === "off"
      ? html`<div class="notice info">
          This server runs with auth off (<code>picloud dev</code>), so no key is checked here. Keys made now work on any
          server sharing this database that runs with auth on, such as <code>picloud serve</code>.
        </div>`
      : null}
    <section class="card">
      <div class="card-head"><h2>Create a key</h2></div>
      <form class="inline-form" onSubmit=${create}>
        <${Field} label="Name" hint="For people: what or who uses it.">
          <input name="key-name" value=${name} onInput=${(e) => setName(e.target.value)} placeholder="ci deploys" maxlength="200" />
        <//>
        <${Field} label="Scope">
          <select name="scope" value=${scope} onChange=${(e) => setScope(e.target.value)}>
            <option value="invoke">invoke: call functions, read invocations</option>
            <option value="admin">admin: everything</option>
          </select>
        <//>
        <button class="btn primary" type="submit" disabled=${busy}>${busy ? "Creating…" : "Create key"}</button>
      </form>
      <${ErrorBox} error=${createError} compact />
      ${created
        ? html`<div class="new-key" data-new-key>
            <div class="new-key-head">
              <b>Copy the key now.</b> It is shown this once: the server keeps only its hash.
              <button class="icon-btn" aria-label="Dismiss" onClick=${() => setCreated(null)}>×</button>
            </div>
            <div class="new-key-value">
              <code class="mono">${created.key}</code>
              <${CopyButton} text=${created.key} label="Copy key" />
            </div>
            <div class="muted small">Use it as <code>Authorization: Bearer ${created.prefix}…</code>, or <code>PICLOUD_API_KEY</code> for the CLI.</div>
          </div>`
        : null}
    </section>
    <${ErrorBox} error=${list.error} onRetry=${list.reload} />
    ${!list.data && !list.error ? html`<${Spinner} />` : null}
    ${list.data && visible.length === 0
      ? html`<div class="card"><${Empty} icon=${icons.keys()} title="No active keys">
          <p>Create one above, or on the server with <code>picloud keys create --scope admin</code>.</p>
        <//></div>`
      : null}
    ${visible.length > 0
      ? html`<div class="card flush">
          <table class="table" data-table="keys">
            <thead><tr><th>Name</th><th>Scope</th><th>Key</th><th>Created</th><th>Last used</th><th>Status</th><th></th></tr></thead>
            <tbody>
              ${visible.map(
                (k) => html`<tr key=${k.id} class=${k.revoked_at ? "revoked" : ""}>
                  <td class="strong">${k.name || html`<span class="muted">unnamed</span>`}</td>
                  <td><span class=${"tag scope-" + k.scope}>${k.scope}</span></td>
                  <td><code>${k.prefix}…</code>${auth.key && auth.key.startsWith(k.prefix) ? html` <span class="tag current">this browser</span>` : null}</td>
                  <td title=${dateTime(k.created_at)}><${Time} at=${k.created_at} /></td>
                  <td>${k.last_used_at ? html`<${Time} at=${k.last_used_at} />` : html`<span class="muted">never</span>`}</td>
                  <td>${k.revoked_at ? html`<span class="muted">revoked <${Time} at=${k.revoked_at} /></span>` : html`<span class="good">active</span>`}</td>
                  <td class="row-actions">
                    ${k.revoked_at ? null : html`<button class="btn small ghost danger-text" onClick=${() => setRevoking(k)}>Revoke</button>`}
                  </td>
                </tr>`,
              )}
            </tbody>
          </table>
        </div>`
      : null}
    ${revokedCount
      ? html`<button class="link-btn" onClick=${() => setShowRevoked(!showRevoked)}>
          ${showRevoked ? "Hide" : "Show"} ${revokedCount} revoked key${revokedCount === 1 ? "" : "s"}
        </button>`
      : null}
    ${revoking
      ? html`<${Confirm}
          title=${`Revoke ${revoking.name || revoking.prefix}?`}
          confirmLabel="Revoke key"
          onClose=${() => setRevoking(null)}
          onConfirm=${async () => {
            await api("DELETE", `/v1/keys/${revoking.id}`);
            toast(`Revoked ${revoking.prefix}…`);
            list.reload();
          }}
        >
          <p>Requests with <code>${revoking.prefix}…</code> stop working on every node at once. This cannot be undone.</p>
          ${auth.key && auth.key.startsWith(revoking.prefix)
            ? html`<div class="notice warn">This is the key this browser is signed in with; you will be signed out.</div>`
            : null}
        <//>`
      : null}
  </div>`;
}
