// Icons: 20×20 strokes, drawn here rather than taken from a font, which
// may lack the glyphs.
import { html } from "../lib/html.mjs";

// Each call makes a new element: one vnode may not sit in two places.
const icon = (d) => () =>
  html`<svg viewBox="0 0 20 20" width="18" height="18" fill="none" stroke="currentColor" stroke-width="1.6"
    stroke-linecap="round" stroke-linejoin="round" aria-hidden="true"><path d=${d} /></svg>`;
export const icons = {
  overview: icon("M3 17h14M5 14V9M9 14V5M13 14v-3M17 14V7"),
  functions: icon("M7 5 3 10l4 5M13 5l4 5-4 5M11 4 9 16"),
  invocations: icon("M11 2 4 11h5l-1 7 7-9h-5l1-7z"),
  schedules: icon("M10 3a7 7 0 1 0 0 14 7 7 0 0 0 0-14zM10 6v4l3 2"),
  keys: icon("M12.5 3a4.5 4.5 0 1 0 0 9 4.5 4.5 0 0 0 0-9zM9.3 10.7 3 17M5 15l2 2M7 13l1.5 1.5"),
};

