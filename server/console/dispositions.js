// What alerts led to, per rule, over the last 7 or 30 days: the share of "no action
// needed" and "measurement error" is the alarm-fatigue figure a programme reviews.
"use strict";
(() => {
  async function load(days) {
    const data = await V.api("GET", "/api/dispositions?days=" + days);
    const ids = data.dispositions.map((d) => d.id);
    document.getElementById("disp-head").replaceChildren(V.el("tr", {},
      V.el("th", {}, V.t("disp.rule")), V.el("th", {}, V.t("disp.total")), V.el("th", {}, V.t("disp.idle")),
      data.dispositions.map((d) => V.el("th", {}, V.disposition(d)))));
    document.getElementById("disp-body").replaceChildren(...data.rules.map((r) => V.el("tr", { "data-rule": r.rule },
      V.el("td", {}, r.rule), V.el("td", { "data-field": "total" }, String(r.total)),
      V.el("td", { "data-field": "idle" }, Math.round(r.nothing_to_do * 100) + " %"),
      ids.map((id) => V.el("td", { "data-disposition": id }, String(r.counts[id] || 0))))));
    document.getElementById("empty").hidden = data.rules.length > 0;
  }

  V.start(async () => {
    const pick = V.el("select", { id: "days", onchange: (e) => load(Number(e.target.value)).catch((err) => V.toast(V.t("err.generic") + err.message)) },
      [7, 30].map((d) => V.el("option", { value: d }, V.t("disp.days") + " " + d + " " + V.t("d"))));
    document.getElementById("main").append(
      V.el("h1", {}, V.t("disp.title")), pick,
      V.el("table", { class: "worklist" }, V.el("thead", { id: "disp-head" }), V.el("tbody", { id: "disp-body" })),
      V.el("p", { id: "empty", class: "empty", hidden: true }, V.t("disp.empty")));
    try { await load(7); } catch (e) { V.toast(V.t("err.generic") + e.message); }
  });
})();
