// Schedules: cron expressions that invoke functions, from GET /v1/schedules;
// made, changed and deleted with PUT/DELETE /v1/functions/{name}/schedules/{schedule}.
import { icons } from "../components/icons.mjs";
import { html, useEffect, useState } from "../lib/html.mjs";
import { api } from "../lib/api.mjs";
import { dateTime, pretty } from "../lib/format.mjs";
import { Confirm, Empty, ErrorBox, Field, Modal, PageHeader, Spinner, Time, toast, useAsync } from "../components/ui.mjs";

const presets = [
  ["@every 1m", "every minute"],
  ["*/5 * * * *", "every 5 minutes"],
  ["@hourly", "hourly"],
  ["0 9 * * 1-5", "9:00 on weekdays"],
  ["@daily", "daily at midnight"],
];

export function Schedules() {
  const list = useAsync(() => api("GET", "/v1/schedules"), []);
  const fns = useAsync(() => api("GET", "/v1/functions"), []);
  const [editing, setEditing] = useState(null); // null, {} for new, or a schedule
  const [deleting, setDeleting] = useState(null);
  const [rowError, setRowError] = useState(null);

  const toggle = async (s) => {
    setRowError(null);
    try {
      await api("PUT", `/v1/functions/${s.function}/schedules/${s.name}`, {
        body: { cron: s.cron, timezone: s.timezone, payload: s.payload ?? undefined, enabled: !s.enabled },
      });
      toast(`${s.function}/${s.name} ${s.enabled ? "paused" : "enabled"}`);
      list.reload();
    } catch (err) {
      setRowError(err);
    }
  };

  const schedules = list.data?.schedules;
  const noFunctions = fns.data && fns.data.functions.length === 0;
  return html`<div class="page">
    <${PageHeader} title="Schedules" subtitle="Invoke functions on a cron expression, exactly once per tick however many workers run">
      <button class="btn primary" disabled=${!fns.data || noFunctions} onClick=${() => setEditing({})}>New schedule</button>
    <//>
    <${ErrorBox} error=${list.error} onRetry=${list.reload} />
    <${ErrorBox} error=${rowError} compact />
    ${!schedules && !list.error ? html`<${Spinner} />` : null}
    ${schedules && schedules.length === 0
      ? html`<div class="card"><${Empty}
          icon=${icons.schedules()}
          title="No schedules yet"
          action=${noFunctions
            ? html`<a class="btn primary" href="/ui/functions/new">Create a function first</a>`
            : html`<button class="btn primary" onClick=${() => setEditing({})}>Create a schedule</button>`}
        >
          <p>A schedule runs a function on every tick of a cron expression, such as <code>*/5 * * * *</code> or
          <code>@hourly</code>, with a JSON payload of your choice. Its invocations have the trigger <i>schedule</i>.</p>
        <//></div>`
      : null}
    ${schedules && schedules.length > 0
      ? html`<div class="card flush">
          <table class="table" data-table="schedules">
            <thead><tr><th>Function</th><th>Schedule</th><th>Cron</th><th>Next run</th><th>Last run</th><th>Enabled</th><th></th></tr></thead>
            <tbody>
              ${schedules.map(
                (s) => html`<tr key=${s.function + "/" + s.name} class=${s.enabled ? "" : "paused"}>
                  <td><a href=${`/ui/functions/${s.function}`}>${s.function}</a></td>
                  <td class="strong">${s.name}</td>
                  <td><code>${s.cron}</code>${s.timezone && s.timezone !== "UTC" ? html` <span class="muted small">${s.timezone}</span>` : null}</td>
                  <td>${s.next_run_at ? html`<span title=${dateTime(s.next_run_at)}><${Time} at=${s.next_run_at} /></span>` : html`<span class="muted">paused</span>`}</td>
                  <td>${s.last_invocation_id
                    ? html`<a href=${`/ui/invocations/${s.last_invocation_id}`}><${Time} at=${s.last_run_at} /> · #${s.last_invocation_id}</a>`
                    : html`<span class="muted">not yet</span>`}</td>
                  <td>
                    <label class="switch" title=${s.enabled ? "Pause" : "Enable"}>
                      <input type="checkbox" checked=${s.enabled} onChange=${() => toggle(s)} aria-label="Enabled" />
                      <span></span>
                    </label>
                  </td>
                  <td class="row-actions">
                    <button class="btn small ghost" onClick=${() => setEditing(s)}>Edit</button>
                    <button class="btn small ghost danger-text" onClick=${() => setDeleting(s)}>Delete</button>
                  </td>
                </tr>`,
              )}
            </tbody>
          </table>
        </div>`
      : null}
    ${editing
      ? html`<${ScheduleForm}
          schedule=${editing}
          functions=${fns.data?.functions || []}
          onClose=${() => setEditing(null)}
          onSaved=${() => {
            setEditing(null);
            list.reload();
          }}
        />`
      : null}
    ${deleting
      ? html`<${Confirm}
          title=${`Delete schedule ${deleting.name}?`}
          onClose=${() => setDeleting(null)}
          onConfirm=${async () => {
            await api("DELETE", `/v1/functions/${deleting.function}/schedules/${deleting.name}`);
            toast(`Deleted schedule ${deleting.function}/${deleting.name}`);
            list.reload();
          }}
        >
          <p><b>${deleting.function}</b> will no longer run on <code>${deleting.cron}</code>. Past invocations stay.</p>
        <//>`
      : null}
  </div>`;
}

function ScheduleForm({ schedule, functions, onClose, onSaved }) {
  const isNew = !schedule.name;
  const [fn, setFn] = useState(schedule.function || functions[0]?.name || "");
  const [name, setName] = useState(schedule.name || "");
  const [cron, setCron] = useState(schedule.cron || "*/5 * * * *");
  const [timezone, setTimezone] = useState(schedule.timezone || "UTC");
  const [payload, setPayload] = useState(schedule.payload !== undefined && schedule.payload !== null ? pretty(schedule.payload) : "");
  const [enabled, setEnabled] = useState(schedule.enabled ?? true);
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  // The form may open before the function list has arrived.
  useEffect(() => {
    if (!fn && functions.length) setFn(functions[0].name);
  }, [functions]);

  const submit = async (e) => {
    e?.preventDefault();
    setError(null);
    let value;
    if (payload.trim()) {
      try {
        value = JSON.parse(payload);
      } catch (err) {
        setError({ detail: `The payload is not valid JSON: ${err.message}` });
        return;
      }
    }
    setBusy(true);
    try {
      await api("PUT", `/v1/functions/${fn}/schedules/${name}`, { body: { cron, timezone, payload: value, enabled } });
      toast(`${isNew ? "Created" : "Saved"} schedule ${fn}/${name}`);
      onSaved();
    } catch (err) {
      setError(err);
      setBusy(false);
    }
  };

  return html`<${Modal}
    title=${isNew ? "New schedule" : `Edit ${schedule.function}/${schedule.name}`}
    onClose=${onClose}
    footer=${html`<button class="btn" onClick=${onClose}>Cancel</button>
      <button class="btn primary" disabled=${busy || !fn || !name} onClick=${submit}>${busy ? "Saving…" : isNew ? "Create schedule" : "Save"}</button>`}
  >
    <form class="form-grid" onSubmit=${submit}>
      <${Field} label="Function">
        <select name="function" value=${fn} disabled=${!isNew} onChange=${(e) => setFn(e.target.value)}>
          ${functions.map((f) => html`<option value=${f.name}>${f.name}</option>`)}
        </select>
      <//>
      <${Field} label="Name" hint="Lower-case letters, digits, - and _.">
        <input name="name" class="mono" value=${name} disabled=${!isNew} onInput=${(e) => setName(e.target.value.trim())} placeholder="nightly" />
      <//>
      <${Field} label="Cron expression" hint="minute hour day month weekday; six fields with seconds first; or @hourly, @daily, @every 10s.">
        <input name="cron" class="mono" value=${cron} onInput=${(e) => setCron(e.target.value)} />
        <div class="presets">
          ${presets.map(([c, label]) => html`<button type="button" class="chip" onClick=${() => setCron(c)} title=${c}>${label}</button>`)}
        </div>
      <//>
      <${Field} label="Time zone" hint="IANA name, e.g. Europe/Berlin.">
        <input name="timezone" value=${timezone} onInput=${(e) => setTimezone(e.target.value.trim())} />
      <//>
      <${Field} label="Payload" hint="JSON the script sees as req.payload on every tick; optional.">
        <textarea name="payload" rows="4" class="mono" value=${payload} onInput=${(e) => setPayload(e.target.value)} placeholder='{"report": "daily"}'></textarea>
      <//>
      <label class="check">
        <input type="checkbox" checked=${enabled} onChange=${(e) => setEnabled(e.target.checked)} /> Enabled
      </label>
      <${ErrorBox} error=${error} compact />
    </form>
  <//>`;
}
