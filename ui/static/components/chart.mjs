// A stacked bar chart of finished invocations per bucket, drawn as SVG: one
// chart needs no charting library.
import { html, useEffect, useRef, useState } from "../lib/html.mjs";
import { percent } from "../lib/format.mjs";

export const series = [
  { key: "succeeded", label: "Succeeded", cls: "succeeded" },
  { key: "failed", label: "Failed", cls: "failed" },
  { key: "timed_out", label: "Timed out", cls: "timed_out" },
  { key: "cancelled", label: "Cancelled", cls: "cancelled" },
];

const H = 220;
const pad = { top: 12, right: 12, bottom: 26, left: 40 };

// ticks picks a step of 1, 2 or 5 times a power of ten that gives at most
// five intervals, and the axis maximum it leads to.
function ticks(v) {
  if (v <= 4) return { max: 4, step: 1 };
  const raw = v / 5;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw);
  return { max: Math.ceil(v / step) * step, step };
}

function hhmm(iso) {
  const d = new Date(iso);
  return `${String(d.getHours()).padStart(2, "0")}:${String(d.getMinutes()).padStart(2, "0")}`;
}

export function ThroughputChart({ buckets, bucketSeconds }) {
  const [hover, setHover] = useState(-1);
  // Drawn at the element's own width, so that text keeps its shape.
  const box = useRef();
  const [W, setW] = useState(900);
  useEffect(() => {
    const ro = new ResizeObserver(([e]) => setW(Math.max(240, Math.round(e.contentRect.width))));
    ro.observe(box.current);
    return () => ro.disconnect();
  }, []);
  const totals = buckets.map((b) => series.reduce((n, s) => n + b[s.key], 0));
  const { max, step } = ticks(Math.max(0, ...totals));
  const iw = W - pad.left - pad.right;
  const ih = H - pad.top - pad.bottom;
  const bw = iw / buckets.length;
  const gap = Math.min(2, bw * 0.2);
  const y = (v) => pad.top + ih - (v / max) * ih;
  const gridLines = Array.from({ length: max / step + 1 }, (_, i) => i * step);
  const labelEvery = Math.ceil(buckets.length / Math.max(2, Math.floor(iw / 90)));
  const hb = hover >= 0 ? buckets[hover] : null;
  const perMinute = bucketSeconds === 60 ? "per minute" : `per ${bucketSeconds / 60} min`;

  return html`<div class="chart" ref=${box} onMouseLeave=${() => setHover(-1)}>
    <svg viewBox=${`0 0 ${W} ${H}`} width=${W} height=${H} role="img" aria-label=${`Finished invocations ${perMinute}`}>
      ${gridLines.map(
        (t) => html`<g>
          <line class="grid" x1=${pad.left} x2=${W - pad.right} y1=${y(t)} y2=${y(t)} />
          <text class="axis" x=${pad.left - 6} y=${y(t) + 4} text-anchor="end">${t.toLocaleString()}</text>
        </g>`,
      )}
      ${buckets.map((b, i) => {
        let acc = 0;
        const x = pad.left + i * bw + gap / 2;
        return html`<g class=${hover === i ? "bar hover" : "bar"}>
          <rect class="hit" x=${pad.left + i * bw} y=${pad.top} width=${bw} height=${ih} onMouseEnter=${() => setHover(i)} />
          ${series.map((s) => {
            const v = b[s.key];
            if (!v) return null;
            const top = y(acc + v);
            const r = html`<rect class=${"seg " + s.cls} x=${x} y=${top} width=${Math.max(bw - gap, 1)} height=${y(acc) - top} />`;
            acc += v;
            return r;
          })}
          ${i % labelEvery === 0
            ? html`<text class="axis" x=${pad.left + i * bw + bw / 2} y=${H - 8} text-anchor="middle">${hhmm(b.start)}</text>`
            : null}
        </g>`;
      })}
    </svg>
    ${hb
      ? html`<div class="chart-tip" style=${{ left: `${((pad.left + (hover + 0.5) * bw) / W) * 100}%` }}>
          <div class="tip-time">${hhmm(hb.start)}–${hhmm(new Date(new Date(hb.start).getTime() + bucketSeconds * 1000).toISOString())}</div>
          ${series.map(
            (s) => html`<div class="tip-row"><span class=${"dot " + s.cls}></span>${s.label}<b>${hb[s.key]}</b></div>`,
          )}
          <div class="tip-row">Error rate<b>${percent(hb.failed + hb.timed_out, totals[hover])}</b></div>
        </div>`
      : null}
    <div class="legend">
      ${series.map((s) => html`<span><span class=${"dot " + s.cls}></span>${s.label}</span>`)}
      <span class="muted">Finished invocations ${perMinute}</span>
    </div>
  </div>`;
}
