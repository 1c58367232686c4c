// The dashboard's only way to the server: the public REST API, exactly as
// the SDKs use it. It holds the API key and tells the app when the server
// wants one.

const storageKey = "picloud.key";

// auth.mode: "unknown" until probe() ran, "off" when the server needs no key
// (picloud dev), "key" when it needs one and we have it, "none" when it needs
// one and we have none (or ours was refused).
export const auth = {
  mode: "unknown",
  key: sessionStorage.getItem(storageKey) || localStorage.getItem(storageKey) || "",
  scope: "",
  remembered: Boolean(localStorage.getItem(storageKey)),
};

const listeners = new Set();

/** onAuthChange calls fn after every change of auth; it returns an unsubscribe. */
export function onAuthChange(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

function authChanged() {
  for (const fn of listeners) fn(auth);
}

/** ApiError carries a problem+json answer (RFC 9457) or a network failure. */
export class ApiError extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.status = status;
    this.title = problem.title || "";
    this.detail = problem.detail || "";
    this.errors = problem.errors || [];
  }
}

async function readProblem(res) {
  const text = await res.text();
  try {
    const body = JSON.parse(text);
    if (body && typeof body === "object") return body;
  } catch {
    // not JSON: a proxy's page, say
  }
  return { title: res.statusText, detail: text.slice(0, 300) || `HTTP ${res.status} ${res.statusText}` };
}

export function authHeaders(key = auth.key) {
  return key && auth.mode !== "off" ? { Authorization: `Bearer ${key}` } : {};
}

/**
 * api calls the REST API and answers with the decoded JSON body (null for
 * 204). Failures throw ApiError; a 401 also drops the key and sends the user
 * to the sign-in screen.
 */
export async function api(method, path, { body, query } = {}) {
  let url = path;
  if (query) {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(query)) if (v !== undefined && v !== null && v !== "") q.set(k, v);
    const s = q.toString();
    if (s) url += (url.includes("?") ? "&" : "?") + s;
  }
  const headers = { Accept: "application/json, application/problem+json", ...authHeaders() };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let res;
  try {
    res = await fetch(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (err) {
    throw new ApiError(0, { title: "Network error", detail: `The server could not be reached (${err.message}).` });
  }
  if (res.status === 401) {
    const problem = await readProblem(res);
    signOut(auth.key ? "The server refused the API key: " + (problem.detail || "unknown or revoked") + "." : "");
    throw new ApiError(401, problem);
  }
  if (!res.ok) throw new ApiError(res.status, await readProblem(res));
  if (res.status === 204) return null;
  const text = await res.text();
  return text ? JSON.parse(text) : null;
}

export let signInMessage = "";

export function signOut(message = "") {
  sessionStorage.removeItem(storageKey);
  localStorage.removeItem(storageKey);
  auth.key = "";
  auth.scope = "";
  signInMessage = message;
  if (auth.mode !== "off") auth.mode = "none";
  authChanged();
}

// check asks for a list any admin key may read: 200 means admin, 403 means a
// valid key with a narrower scope, 401 means the key is no good.
async function check(key) {
  const headers = key ? { Authorization: `Bearer ${key}` } : {};
  const res = await fetch("/v1/functions", { headers });
  if (res.status === 200) return "admin";
  if (res.status === 403) return "invoke";
  if (res.status === 401) return "";
  throw new ApiError(res.status, await readProblem(res));
}

/**
 * probe finds out whether the server wants a key. A successful call without
 * one means auth is off (picloud dev); then no key is ever sent.
 */
export async function probe() {
  if (auth.key) {
    const scope = await check(auth.key);
    if (scope) {
      Object.assign(auth, { mode: "key", scope });
      authChanged();
      return;
    }
  }
  if (await check("")) {
    Object.assign(auth, { mode: "off", scope: "admin", key: "" });
  } else {
    if (auth.key) signInMessage = "The saved API key is unknown or revoked; enter another.";
    Object.assign(auth, { mode: "none", key: "", scope: "" });
  }
  authChanged();
}

/** signIn checks a key and keeps it for this tab, or on this device with remember. */
export async function signIn(key, remember) {
  key = key.trim();
  if (!key) throw new ApiError(0, { detail: "Paste an API key first." });
  const scope = await check(key);
  if (!scope) throw new ApiError(401, { detail: "The server does not know this key, or it was revoked." });
  sessionStorage.removeItem(storageKey);
  localStorage.removeItem(storageKey);
  (remember ? localStorage : sessionStorage).setItem(storageKey, key);
  signInMessage = "";
  Object.assign(auth, { mode: "key", key, scope, remembered: remember });
  authChanged();
}

/** eventsURL is an events endpoint with the key as a query parameter: EventSource cannot send headers. */
export function eventsURL(path, query = {}) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) if (v) q.set(k, v);
  if (auth.mode === "key" && auth.key) q.set("access_token", auth.key);
  const s = q.toString();
  return s ? `${path}?${s}` : path;
}
