// The live alert board: every open alert of the caller's care teams, most severe and newest
// first; follows /api/events from the position the list was read at, so that a reconnect
// (EventSource sends Last-Event-ID) misses and repeats nothing: rows are keyed by alert id
// and an event older than what a row shows is ignored.
"use strict";
(() => {
  const SEVERITY = { high: 3, medium: 2, low: 1 };
  const SNOOZES = [15, 60, 240];
  const MUTE_MS = 5 * 60 * 1000; // a mute always ends: never silence alarms for good
  const alerts = new Map(); // id -> { alert, seq }
  let lastSeq = 0, source = null, session = null, mutedUntil = 0, audio = null, retryTimer = null;
  const filters = { care_team: "", severity: "", state: "open" };
  // When each of the newest alerts was first shown (browser clock), for measuring how fast
  // an alert reaches the board; bounded.
  const seen = new Map();
  // Tones played (for tests: a muted board plays none).
  const sound = { played: 0 };
  const rows = new WeakMap(); // alert object -> its row
  const fresh = []; // alerts raised since the last draw, stamped in `seen` when drawn
  window.vigilBoard = { seen, sound };

  function beep() {
    if (Date.now() < mutedUntil) return;
    sound.played++;
    try {
      audio = audio || new (window.AudioContext || window.webkitAudioContext)();
      for (const [at, freq] of [[0, 880], [0.25, 660], [0.5, 880]]) {
        const o = audio.createOscillator(), g = audio.createGain();
        o.frequency.value = freq; g.gain.value = 0.15;
        o.connect(g); g.connect(audio.destination);
        o.start(audio.currentTime + at); o.stop(audio.currentTime + at + 0.18);
      }
    } catch (_) { /* no audio device */ }
  }

  function apply(seq, alert) {
    const known = alerts.get(alert.id);
    if (known && known.seq >= seq) return false;
    if (alert.state === "resolved") { alerts.delete(alert.id); return true; }
    alerts.set(alert.id, { alert, seq });
    return true;
  }

  function wanted(a) {
    if (filters.care_team && a.care_team !== filters.care_team && !(a.escalated_to || []).includes(filters.care_team)) return false;
    if (filters.severity && SEVERITY[a.severity] < SEVERITY[filters.severity]) return false;
    if (filters.state !== "open" && a.board_state !== filters.state) return false;
    return true;
  }

  async function act(id, action, body) {
    try {
      const alert = await V.api("POST", `/api/alerts/${encodeURIComponent(id)}/${action}`, body || {});
      // Shown now; the stream's event for the action (a higher seq) confirms it.
      if (alert.state === "resolved") alerts.delete(id);
      else alerts.set(id, { alert, seq: lastSeq });
      render();
    } catch (e) { V.toast(V.t("err.generic") + e.message); }
  }

  function row(a) {
    const buttons = session.may_act ? V.el("div", { class: "actions" },
      a.assignee !== session.name ? V.el("button", { type: "button", class: "small", "data-action": "claim", title: V.t("act.claim"), onclick: () => act(a.id, "claim") }, V.t("act.claim")) : null,
      a.state === "active" ? V.el("button", { type: "button", "data-action": "acknowledge", onclick: () => act(a.id, "acknowledge") }, V.t("act.acknowledge")) : null,
      // Resolving says what the alert led to: choosing the disposition resolves it.
      V.el("select", { "data-action": "resolve", title: V.t("act.resolve"),
        onchange: (e) => { if (e.target.value) act(a.id, "resolve", { disposition: e.target.value }); } },
        V.el("option", { value: "" }, V.t("act.resolve_as")),
        (session.dispositions || []).map((d) => V.el("option", { value: d.id }, V.disposition(d)))),
      V.el("span", { class: "snooze", title: V.t("act.snooze") }, V.t("act.snooze"),
        SNOOZES.map((m) => V.el("button", { type: "button", class: "small", "data-action": "snooze", "data-minutes": m,
          title: V.t("act.snooze"), onclick: () => act(a.id, "snooze", { minutes: m }) }, m < 60 ? m + "m" : m / 60 + "h")))
    ) : V.el("div", { class: "actions" });
    const unit = V.unit(a.metric, a.unit);
    const state = V.t("state." + a.board_state) + (a.escalation_level ? " L" + a.escalation_level : "");
    const extra = [a.assignee ? V.t("board.assignee") + " " + a.assignee : "", a.acknowledged ? V.t("board.by") + " " + a.acknowledged.by : "",
      a.snoozed_until_ms > Date.now() ? V.t("board.snoozed") + " " + V.time(a.snoozed_until_ms) : "", a.care_team,
      a.parameters ? V.t("board.parameters") + " " + a.parameters : "",
      a.rule_set_version ? V.t("board.rule_set") + " v" + a.rule_set_version : ""].filter(Boolean).join(" · ");
    return V.el("article", { class: `alert sev-${a.severity} st-${a.board_state}`, "data-alert-id": a.id, "data-state": a.board_state, "data-severity": a.severity },
      V.el("span", { class: "sev" }, V.t("sev." + a.severity)),
      V.el("a", { class: "patient", href: "/patients/" + encodeURIComponent(a.patient_id) }, a.patient_id),
      V.el("span", { class: "rule", title: a.rule_id }, a.rule_id),
      V.el("span", { class: "value", title: V.metric(a.metric) }, V.num(a.value) + (unit ? " " + unit : "")),
      V.el("span", { class: "message", title: a.message + (extra ? " — " + extra : "") }, a.message),
      V.el("span", { class: "state", title: extra }, state),
      V.el("span", { class: "time", title: V.t("board.observed") + " " + V.time(a.observed_at_ms) }, V.clock(a.observed_at_ms)),
      V.el("span", { class: "time", title: V.t("board.raised") + " " + V.time(a.raised_at_ms) }, V.clock(a.raised_at_ms)),
      buttons);
  }

  function header() {
    return V.el("div", { class: "alert head" },
      V.el("span", {}, ""), V.el("span", {}, V.t("wl.patient")), V.el("span", {}, V.t("sil.rule")), V.el("span", {}, V.t("board.value")),
      V.el("span", {}, V.t("board.message")), V.el("span", {}, V.t("filter.state")), V.el("span", {}, V.t("board.observed")),
      V.el("span", {}, V.t("board.raised")), V.el("span", {}, ""));
  }

  let headerRow = null, emptyRow = null;
  function render() {
    headerRow = headerRow || header();
    emptyRow = emptyRow || V.el("p", { class: "empty" }, V.t("board.empty"));
    const list = [...alerts.values()].map((x) => x.alert);
    const counts = { high: 0, medium: 0, low: 0 };
    for (const a of list) counts[a.severity]++;
    for (const s of Object.keys(counts)) {
      const c = document.querySelector(`.count[data-severity="${s}"] b`);
      if (c) c.textContent = counts[s];
    }
    const shown = list.filter(wanted).sort((a, b) =>
      SEVERITY[b.severity] - SEVERITY[a.severity] || b.raised_at_ms - a.raised_at_ms);
    const board = document.getElementById("alerts");
    // A row is built once per state of its alert (an event replaces the alert object), and
    // only rows that changed place are moved: a new alert inserts one row, not 500.
    const wantedNodes = shown.length ? [headerRow] : [emptyRow];
    for (const a of shown) {
      let el = rows.get(a);
      if (!el) { el = row(a); rows.set(a, el); }
      wantedNodes.push(el);
    }
    let at = board.firstChild;
    for (const node of wantedNodes) {
      if (at === node) { at = at.nextSibling; continue; }
      board.insertBefore(node, at);
    }
    while (at) { const next = at.nextSibling; at.remove(); at = next; }
    const now = Date.now();
    for (const id of fresh) {
      seen.set(id, now);
      if (seen.size > 1000) seen.delete(seen.keys().next().value);
    }
    fresh.length = 0;
  }

  // Events arrive in bursts: draw at most once a frame (a hidden tab once every 250 ms).
  let drawPending = false;
  function scheduleRender() {
    if (drawPending) return;
    drawPending = true;
    const draw = () => { drawPending = false; render(); };
    if (document.hidden) setTimeout(draw, 250); else requestAnimationFrame(draw);
  }

  async function load() {
    const data = await V.api("GET", "/api/alerts");
    alerts.clear();
    for (const a of data.alerts) alerts.set(a.id, { alert: a, seq: data.seq });
    lastSeq = data.seq;
    showRuleSet(data.rule_set);
    render();
  }

  // The footer names the rules in force: which version, approved by whom.
  function showRuleSet(v) {
    const el = document.getElementById("rule-set");
    if (!el || !v) return;
    const by = v.approved_by ? V.t("board.approved_by") + " " + v.approved_by + (v.second_approver ? " + " + v.second_approver : "")
      : V.t("board.unapproved");
    el.dataset.number = v.number;
    el.textContent = `${V.t("board.rules_in_force")} v${v.number} · ${v.hash.slice(0, 12)} · ${by}`;
    el.title = [v.hash, v.change, v.approved_at_ms ? V.time(v.approved_at_ms) : ""].filter(Boolean).join(" · ");
  }

  function connect() {
    if (source) source.close();
    clearTimeout(retryTimer);
    source = new EventSource("/api/events?after=" + lastSeq);
    source.onopen = () => V.connection(true);
    source.addEventListener("alert", (m) => {
      const e = JSON.parse(m.data);
      lastSeq = Math.max(lastSeq, e.seq);
      const isNew = !alerts.has(e.alert.id) && e.kind === "raised";
      if (apply(e.seq, e.alert)) {
        if (isNew && e.alert.severity === "high") beep();
        if (isNew) fresh.push(e.alert.id);
        scheduleRender();
      }
    });
    source.addEventListener("reset", () => { source.close(); restart(); });
    source.onerror = () => {
      V.connection(false);
      // The browser retries by itself unless the server refused the stream outright.
      if (source.readyState === EventSource.CLOSED) retryTimer = setTimeout(restart, 2000);
    };
  }

  async function restart() {
    try { await load(); connect(); } catch (_) { V.connection(false); retryTimer = setTimeout(restart, 2000); }
  }

  function muteButton() {
    const b = V.el("button", { type: "button", class: "plain mute", id: "mute" });
    const show = () => {
      const left = mutedUntil - Date.now();
      b.textContent = left > 0 ? `${V.t("board.unmute")} ${Math.ceil(left / 60000)} ${V.t("min")}` : V.t("board.mute");
      b.classList.toggle("on", left > 0);
    };
    b.addEventListener("click", () => { mutedUntil = mutedUntil > Date.now() ? 0 : Date.now() + MUTE_MS; show(); });
    setInterval(show, 10000);
    show();
    return b;
  }

  function select(name, options, onchange) {
    return V.el("label", {}, V.t("filter." + name) + " ",
      V.el("select", { "data-filter": name, onchange: (e) => { onchange(e.target.value); render(); } },
        options.map(([v, label]) => V.el("option", { value: v }, label))));
  }

  V.start(async (s) => {
    session = s;
    const teams = s.care_team ? [s.care_team] : s.care_teams;
    document.getElementById("main").append(
      V.el("section", { class: "counts" },
        ["high", "medium", "low"].map((sev) => V.el("span", { class: `count sev-${sev}`, "data-severity": sev }, V.t("sev." + sev) + " ", V.el("b", {}, "0"))),
        V.el("span", { class: "spacer" }),
        teams.length > 1 ? select("team", [["", V.t("filter.all")], ...teams.map((t) => [t, t])], (v) => { filters.care_team = v; }) : null,
        select("severity", [["", V.t("filter.all")], ["high", V.t("sev.high")], ["medium", "≥ " + V.t("sev.medium")]], (v) => { filters.severity = v; }),
        select("state", [["open", V.t("filter.open")], ["active", V.t("state.active")], ["acknowledged", V.t("state.acknowledged")], ["escalated", V.t("state.escalated")]], (v) => { filters.state = v; }),
        muteButton()),
      V.el("section", { id: "alerts", class: "alerts" }),
      V.el("footer", { id: "rule-set", class: "rule-set" }));
    await restart();
    setInterval(() => V.api("GET", "/api/rule-set").then(showRuleSet).catch(() => {}), 60000);
  });
})();
