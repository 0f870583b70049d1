// One patient: care team, conditions, tier, consent and overrides; open alerts with their
// actions; a chart per metric of the readings Vigil holds, with the rule levels; and the
// alert history (who acknowledged, when). Refreshed every 10 s.
"use strict";
(() => {
  const id = decodeURIComponent(location.pathname.replace(/^\/patients\//, ""));
  let session = null;

  async function act(alertId, action) {
    try {
      await V.api("POST", `/api/alerts/${encodeURIComponent(alertId)}/${action}`, {});
      await load();
    } catch (e) { V.toast(V.t("err.generic") + e.message); }
  }

  function facts(p, page) {
    const overrides = p.overrides.length
      ? p.overrides.map((o) => o.rule_id + ": " + Object.entries(o.override).filter(([, v]) => v !== null).map(([k, v]) => k + " " + v).join(", ")).join("; ")
      : V.t("pt.none");
    return V.el("dl", { class: "facts" },
      V.el("dt", {}, V.t("wl.team")), V.el("dd", {}, p.care_team),
      V.el("dt", {}, V.t("pt.conditions")), V.el("dd", {}, p.conditions.join(", ") || V.t("pt.none")),
      V.el("dt", {}, V.t("pt.tier")), V.el("dd", {}, p.tier || V.t("pt.none")),
      V.el("dt", {}, V.t("pt.consent")), V.el("dd", {}, V.t(p.consent ? "pt.yes" : "pt.no")),
      V.el("dt", {}, V.t("pt.overrides")), V.el("dd", {}, overrides),
      V.el("dt", {}, V.t("wl.news2")), V.el("dd", {}, page.news2 ? String(page.news2.total) : "—"),
      V.el("dt", {}, V.t("wl.last")), V.el("dd", {}, V.time(page.last_reading_ms)),
      V.el("dt", {}, V.t("wl.reviewed")), V.el("dd", {}, page.review && page.review.until_ms > Date.now()
        ? V.time(page.review.until_ms) + " · " + page.review.by + (page.review.note ? " · " + page.review.note : "") : "—"));
  }

  function openAlert(a) {
    return V.el("article", { class: `palert sev-${a.severity}`, "data-alert-id": a.id, "data-state": a.board_state },
      V.el("div", { class: "sev" }, V.t("sev." + a.severity)),
      V.el("div", { class: "what" },
        V.el("div", { class: "line1" }, V.el("span", { class: "patient" }, a.patient_id), V.el("span", { class: "rule" }, a.rule_id),
          V.el("span", { class: "value" }, V.metric(a.metric) + " " + V.num(a.value))),
        V.el("div", { class: "message" }, a.message),
        V.el("div", { class: "meta" }, V.el("span", {}, V.t("state." + a.board_state)), V.el("span", {}, V.t("board.raised") + " " + V.time(a.raised_at_ms)))),
      session.may_act && session.role !== "admin" ? V.el("div", { class: "actions" },
        a.state === "active" ? V.el("button", { type: "button", "data-action": "acknowledge", onclick: () => act(a.id, "acknowledge") }, V.t("act.acknowledge")) : null,
        V.el("button", { type: "button", "data-action": "resolve", onclick: () => act(a.id, "resolve") }, V.t("act.resolve"))) : null);
  }

  function chart(s) {
    const unit = V.unit(s.metric, s.unit);
    return V.el("figure", { class: "chart", "data-metric": s.metric },
      V.el("figcaption", {}, V.metric(s.metric) + (unit ? " (" + unit + ")" : "") + " · " + s.samples.length),
      V.chart(s));
  }

  // Thirty days per measured metric, oldest left: a filled cell is a day with a reading
  // (in the patient's time zone), the last cell today.
  function adherence(page) {
    const days = 30;
    return V.el("table", { class: "adherence", "data-today": page.today },
      V.el("tbody", {}, page.adherence.map((a) => V.el("tr", { "data-adherence-metric": a.metric, "data-days": a.days_measured },
        V.el("th", {}, V.metric(a.metric)),
        V.el("td", { class: "strip" }, Array.from({ length: days }, (_, k) => {
          const back = days - 1 - k;
          const on = (a.recent_days >>> back) & 1;
          return V.el("span", { class: on ? "day on" : "day", title: back === 0 ? V.t("pt.today") : back + " " + V.t("pt.daysago") });
        })),
        V.el("td", { class: "count" }, a.days_measured + "/" + days)))));
  }

  function history(events) {
    return V.el("table", { class: "history" },
      V.el("tbody", {}, events.map((e) => V.el("tr", { "data-seq": e.seq },
        V.el("td", {}, V.time(e.at_ms)), V.el("td", {}, V.t("ev." + e.kind)), V.el("td", {}, e.alert.rule_id),
        V.el("td", { class: "rule-set", title: [e.alert.rule_set_hash, e.alert.parameters].filter(Boolean).join(" · ") },
          e.alert.rule_set_version ? "v" + e.alert.rule_set_version : ""),
        V.el("td", {}, e.by), V.el("td", {}, e.note)))));
  }

  async function load() {
    const page = await V.api("GET", "/api/patients/" + encodeURIComponent(id));
    const p = page.profile;
    document.getElementById("main").replaceChildren(
      V.el("h1", {}, p.id),
      facts(p, page),
      V.el("h2", {}, V.t("pt.open")),
      V.el("section", { class: "alerts" }, page.open_alerts.length ? page.open_alerts.map(openAlert) : V.el("p", { class: "empty" }, V.t("board.empty"))),
      V.el("h2", {}, V.t("pt.adherence")),
      page.adherence.length ? adherence(page) : V.el("p", { class: "empty" }, V.t("pt.nodata")),
      V.el("h2", {}, V.t("pt.readings")),
      V.el("section", { class: "charts" }, page.series.length ? page.series.map(chart) : V.el("p", { class: "empty" }, V.t("pt.nodata"))),
      V.el("h2", {}, V.t("pt.history")),
      history(page.recent_events));
  }

  V.start(async (s) => {
    session = s;
    try { await load(); } catch (e) { V.toast(V.t("err.generic") + e.message); }
    setInterval(() => load().catch(() => {}), 10000);
  });
})();
