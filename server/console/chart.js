// One metric's readings as an SVG line chart, with each rule's level drawn as a dashed
// line. Hand-written: a single series with level lines needs no charting library.
"use strict";
V.chart = function (series, width, height) {
  width = width || 560; height = height || 180;
  const pad = { l: 44, r: 120, t: 10, b: 22 };
  const pts = series.samples;
  const levels = series.lines.map((l) => l.level);
  const values = pts.map((p) => p[1]).concat(levels);
  let lo = Math.min(...values), hi = Math.max(...values);
  if (lo === hi) { lo -= 1; hi += 1; }
  const span = hi - lo; lo -= span * 0.08; hi += span * 0.08;
  const t0 = pts.length ? pts[0][0] : 0, t1 = pts.length ? pts[pts.length - 1][0] : 1;
  const x = (ts) => pad.l + (t1 === t0 ? 0.5 : (ts - t0) / (t1 - t0)) * (width - pad.l - pad.r);
  const y = (v) => pad.t + (1 - (v - lo) / (hi - lo)) * (height - pad.t - pad.b);
  const root = V.svg("svg", { viewBox: `0 0 ${width} ${height}`, class: "chart-svg", role: "img" });
  root.append(V.svg("rect", { x: pad.l, y: pad.t, width: width - pad.l - pad.r, height: height - pad.t - pad.b, class: "plot" }));
  for (const v of [lo + (hi - lo) * 0.08, hi - (hi - lo) * 0.08]) {
    root.append(V.svg("text", { x: pad.l - 4, y: y(v) + 4, class: "axis", "text-anchor": "end", text: V.num(Math.round(v * 10) / 10) }));
  }
  if (pts.length) {
    root.append(V.svg("text", { x: pad.l, y: height - 6, class: "axis", text: V.time(t0).slice(-8) }));
    root.append(V.svg("text", { x: width - pad.r, y: height - 6, class: "axis", "text-anchor": "end", text: V.time(t1).slice(-8) }));
  }
  for (const l of series.lines) {
    root.append(V.svg("line", { x1: pad.l, x2: width - pad.r, y1: y(l.level), y2: y(l.level), class: "level sev-" + l.severity }));
    root.append(V.svg("text", { x: width - pad.r + 4, y: y(l.level) + 4, class: "level-label", text: l.rule_id + " " + V.num(l.level) }));
  }
  if (pts.length > 1) {
    root.append(V.svg("polyline", { points: pts.map((p) => x(p[0]).toFixed(1) + "," + y(p[1]).toFixed(1)).join(" "), class: "series" }));
  }
  const last = pts[pts.length - 1];
  if (last) root.append(V.svg("circle", { cx: x(last[0]), cy: y(last[1]), r: 3, class: "last" }));
  return root;
};
