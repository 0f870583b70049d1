// Silences in force (Alertmanager's term): list, create by patient and/or rule with a
// duration and a comment, delete.
"use strict";
(() => {
  const DURATIONS = [[15, "15 min"], [60, "1 h"], [240, "4 h"], [720, "12 h"], [1440, "24 h"]];

  async function load() {
    const data = await V.api("GET", "/api/silences");
    const body = document.getElementById("silences-body");
    body.replaceChildren(...data.silences.map((s) => V.el("tr", { "data-silence-id": s.id },
      V.el("td", {}, s.patient_id || "*"), V.el("td", {}, s.rule_id || "*"), V.el("td", {}, s.care_team || "*"),
      V.el("td", {}, V.time(s.ends_at_ms)), V.el("td", {}, s.reason), V.el("td", {}, s.by),
      V.el("td", {}, V.session.may_act ? V.el("button", { type: "button", "data-action": "delete", onclick: async () => {
        try { await V.api("DELETE", "/api/silences/" + encodeURIComponent(s.id)); await load(); } catch (e) { V.toast(V.t("err.generic") + e.message); }
      } }, V.t("act.delete")) : null))));
    document.getElementById("empty").hidden = data.silences.length > 0;
  }

  V.start(async (session) => {
    const input = (name, label) => V.el("label", {}, V.t(label) + " ", V.el("input", { type: "text", name, maxlength: 128 }));
    const form = V.el("form", { class: "silence-form", onsubmit: async (e) => {
      e.preventDefault();
      const f = new FormData(e.target);
      try {
        await V.api("POST", "/api/silences", { patient_id: f.get("patient_id"), rule_id: f.get("rule_id"),
          minutes: Number(f.get("minutes")), comment: f.get("comment") });
        e.target.reset();
        await load();
      } catch (err) { V.toast(V.t("err.generic") + err.message); }
    } },
      input("patient_id", "sil.patient"), input("rule_id", "sil.rule"),
      V.el("label", {}, V.t("sil.duration") + " ", V.el("select", { name: "minutes" }, DURATIONS.map(([m, l]) => V.el("option", { value: m }, l)))),
      V.el("label", {}, V.t("sil.comment") + " ", V.el("input", { type: "text", name: "comment", maxlength: 1000 })),
      V.el("button", { type: "submit" }, V.t("act.create")));
    const head = ["sil.patient", "sil.rule", "sil.team", "sil.ends", "sil.comment", "sil.by", ""];
    document.getElementById("main").append(
      session.may_act ? form : null,
      V.el("table", { class: "worklist" },
        V.el("thead", {}, V.el("tr", {}, head.map((h) => V.el("th", {}, h ? V.t(h) : "")))),
        V.el("tbody", { id: "silences-body" })),
      V.el("p", { id: "empty", class: "empty", hidden: true }, V.t("sil.empty")));
    try { await load(); } catch (e) { V.toast(V.t("err.generic") + e.message); }
  });
})();
