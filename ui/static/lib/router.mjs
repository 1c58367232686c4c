// A small history router for the dashboard's own paths under /ui/. The
// server answers every such path with index.html, so links can be
// bookmarked and reloaded.
import { useEffect, useState } from "./html.mjs";

export const base = "/ui";

const listeners = new Set();

export function currentLocation() {
  return { path: location.pathname.replace(/^\/ui/, "") || "/", query: new URLSearchParams(location.search) };
}

export function navigate(to, { replace = false } = {}) {
  const url = to.startsWith(base) ? to : base + to;
  if (url === location.pathname + location.search) return;
  history[replace ? "replaceState" : "pushState"](null, "", url);
  for (const fn of listeners) fn();
  if (!replace) window.scrollTo(0, 0);
}

export function useLocation() {
  const [loc, setLoc] = useState(currentLocation);
  useEffect(() => {
    const update = () => setLoc(currentLocation());
    listeners.add(update);
    window.addEventListener("popstate", update);
    return () => {
      listeners.delete(update);
      window.removeEventListener("popstate", update);
    };
  }, []);
  return loc;
}

/** match returns the named segments of pattern ("/functions/:name") in path, or null. */
export function match(pattern, path) {
  const norm = (x) => x.replace(/\/+$/, "") || "/";
  const p = norm(pattern).split("/");
  const s = norm(path).split("/");
  if (p.length !== s.length) return null;
  const params = {};
  for (let i = 0; i < p.length; i++) {
    if (p[i].startsWith(":")) params[p[i].slice(1)] = decodeURIComponent(s[i]);
    else if (p[i] !== s[i]) return null;
  }
  return params;
}

// Plain left clicks on links into the dashboard stay in the page.
document.addEventListener("click", (e) => {
  if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
  const a = e.target.closest?.("a[href]");
  if (!a || a.target || a.hasAttribute("download")) return;
  const url = new URL(a.href, location.href);
  if (url.origin !== location.origin || !(url.pathname === base || url.pathname.startsWith(base + "/"))) return;
  e.preventDefault();
  navigate(url.pathname + url.search);
});
