// The patient worklist: the caller's patients sorted by risk (the server's order: needing
// review, open alerts by severity, NEWS2, longest without a reading), filters by condition
// and tier, and a review mark with a note per patient.
"use strict";
(() => {
  let data = { patients: [], now_ms: 0 }, session = null;
  const filters = { condition: "", tier: "" };

  async function review(id, hours, note) {
    try {
      await V.api("POST", `/api/patients/${encodeURIComponent(id)}/review`, { hours, note });
      await load();
    } catch (e) { V.toast(V.t("err.generic") + e.message); }
  }

  function row(p) {
    const o = p.open, r = p.review;
    const note = V.el("input", { type: "text", class: "note", placeholder: V.t("wl.note"), maxlength: 500 });
    return V.el("tr", { "data-patient-id": p.profile.id, class: p.needs_review ? "needs" : "reviewed" },
      V.el("td", {}, V.el("a", { href: "/patients/" + encodeURIComponent(p.profile.id) }, p.profile.id),
        p.needs_review ? V.el("span", { class: "tag" }, V.t("wl.needs")) : null),
      V.el("td", {}, p.profile.care_team),
      V.el("td", {}, (p.profile.conditions || []).join(", ")),
      V.el("td", {}, p.profile.tier || ""),
      V.el("td", { class: "open" },
        o.high ? V.el("span", { class: "pill sev-high" }, o.high) : null,
        o.medium ? V.el("span", { class: "pill sev-medium" }, o.medium) : null,
        o.low ? V.el("span", { class: "pill sev-low" }, o.low) : null),
      V.el("td", {}, p.news2 === null ? "" : p.news2),
      V.el("td", {}, V.ago(p.last_reading_ms, data.now_ms)),
      V.el("td", {}, r && r.until_ms > data.now_ms ? V.el("span", { title: r.note }, V.time(r.until_ms) + " · " + r.by) : ""),
      V.el("td", { class: "actions" }, session.may_act ? [note,
        V.el("button", { type: "button", "data-action": "review", onclick: () => review(p.profile.id, 24, note.value) }, V.t("act.review") + " 24 " + V.t("h"))] : null));
  }

  function render() {
    const shown = data.patients.filter((p) =>
      (!filters.condition || (p.profile.conditions || []).includes(filters.condition)) &&
      (!filters.tier || p.profile.tier === filters.tier));
    const body = document.getElementById("worklist-body");
    body.replaceChildren(...shown.map(row));
    document.getElementById("empty").hidden = shown.length > 0;
  }

  function options(select, values) {
    const current = select.value;
    select.replaceChildren(V.el("option", { value: "" }, V.t("filter.all")), ...values.map((v) => V.el("option", { value: v }, v)));
    select.value = values.includes(current) ? current : "";
  }

  async function load() {
    data = await V.api("GET", "/api/patients");
    const conditions = [...new Set(data.patients.flatMap((p) => p.profile.conditions || []))].sort();
    const tiers = [...new Set(data.patients.map((p) => p.profile.tier).filter(Boolean))].sort();
    options(document.querySelector("[data-filter=condition]"), conditions);
    options(document.querySelector("[data-filter=tier]"), tiers);
    render();
  }

  V.start(async (s) => {
    session = s;
    const filter = (name) => V.el("label", {}, V.t("filter." + name) + " ",
      V.el("select", { "data-filter": name, onchange: (e) => { filters[name] = e.target.value; render(); } }));
    const head = ["wl.patient", "wl.team", "wl.conditions", "wl.tier", "wl.open", "wl.news2", "wl.last", "wl.reviewed", ""];
    document.getElementById("main").append(
      V.el("section", { class: "counts" }, filter("condition"), filter("tier")),
      V.el("table", { class: "worklist" },
        V.el("thead", {}, V.el("tr", {}, head.map((h) => V.el("th", {}, h ? V.t(h) : "")))),
        V.el("tbody", { id: "worklist-body" })),
      V.el("p", { id: "empty", class: "empty", hidden: true }, V.t("wl.empty")));
    try { await load(); } catch (e) { V.toast(V.t("err.generic") + e.message); }
    setInterval(() => load().catch(() => {}), 30000);
  });
})();
