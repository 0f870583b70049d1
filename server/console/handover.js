// The shift handover: a care team's open alerts, who answers for each (or nobody), and the
// newest note on each; claim one, or hand every alert of one person to another at once.
"use strict";
(() => {
  let team = "";

  async function load() {
    const data = await V.api("GET", "/api/handover?care_team=" + encodeURIComponent(team));
    document.getElementById("counts").textContent =
      `${data.claimed} ${V.t("ho.claimed")} · ${data.unclaimed} ${V.t("ho.unclaimed")}`;
    document.getElementById("ho-body").replaceChildren(...data.alerts.map(({ alert: a, last_note: n }) =>
      V.el("tr", { "data-alert-id": a.id, "data-assignee": a.assignee || "" },
        V.el("td", {}, V.t("sev." + a.severity)),
        V.el("td", {}, V.el("a", { href: "/patients/" + encodeURIComponent(a.patient_id) }, a.patient_id)),
        V.el("td", {}, a.rule_id), V.el("td", {}, V.t("state." + a.board_state)),
        V.el("td", { class: a.assignee ? "" : "unclaimed" }, a.assignee || V.t("ho.nobody")),
        V.el("td", {}, n ? `${n.note} — ${n.by || "Vigil"}, ${V.clock(n.at_ms)}` : ""),
        V.el("td", {}, V.session.may_act && a.assignee !== V.session.name
          ? V.el("button", { type: "button", "data-action": "claim", onclick: () => act(a.id) }, V.t("act.claim")) : null))));
    document.getElementById("empty").hidden = data.alerts.length > 0;
  }

  async function act(id) {
    try { await V.api("POST", `/api/alerts/${encodeURIComponent(id)}/claim`, {}); await load(); }
    catch (e) { V.toast(V.t("err.generic") + e.message); }
  }

  V.start(async (session) => {
    team = session.care_team || (session.care_teams || [])[0] || "default";
    const pick = session.care_team ? null : V.el("label", {}, V.t("filter.team") + " ",
      V.el("select", { id: "team", onchange: (e) => { team = e.target.value; load().catch((err) => V.toast(V.t("err.generic") + err.message)); } },
        (session.care_teams.length ? session.care_teams : ["default"]).map((t) => V.el("option", { value: t }, t))));
    const form = V.el("form", { class: "silence-form", id: "handover", onsubmit: async (e) => {
      e.preventDefault();
      const f = new FormData(e.target);
      try {
        const r = await V.api("POST", "/api/handover", { care_team: team, from: f.get("from"), to: f.get("to"), note: f.get("note") });
        V.toast(`${r.handed_over} ${V.t("ho.done")}`);
        await load();
      } catch (err) { V.toast(V.t("err.generic") + err.message); }
    } },
      V.el("label", {}, V.t("ho.from") + " ", V.el("input", { type: "text", name: "from", value: session.name, maxlength: 128 })),
      V.el("label", {}, V.t("ho.to") + " ", V.el("input", { type: "text", name: "to", maxlength: 128, required: true })),
      V.el("label", {}, V.t("sil.comment") + " ", V.el("input", { type: "text", name: "note", maxlength: 1000 })),
      V.el("button", { type: "submit" }, V.t("act.handover")));
    const head = ["filter.severity", "wl.patient", "sil.rule", "filter.state", "ho.assignee", "ho.note", ""];
    document.getElementById("main").append(
      V.el("h1", {}, V.t("ho.title")), pick, V.el("p", { id: "counts" }),
      session.may_act ? form : null,
      V.el("table", { class: "worklist" },
        V.el("thead", {}, V.el("tr", {}, head.map((h) => V.el("th", {}, h ? V.t(h) : "")))),
        V.el("tbody", { id: "ho-body" })),
      V.el("p", { id: "empty", class: "empty", hidden: true }, V.t("board.empty")));
    try { await load(); } catch (e) { V.toast(V.t("err.generic") + e.message); }
  });
})();
