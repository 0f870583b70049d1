// What every console page shares: the session (who, CSRF token, time zone), the API call
// helper, translations, time formatting, and a DOM builder that only ever sets text (no
// markup from the server or a reading is ever parsed as HTML).
"use strict";
const V = (() => {
  const lang = document.documentElement.lang === "zh-CN" ? "zh-CN" : "en";
  const strings = window.VIGIL_STRINGS[lang];
  const metrics = window.VIGIL_METRICS[lang];
  let session = null;

  function t(key) { return strings[key] || key; }

  // A disposition's name: translated for the built-in ones, else as configured.
  function disposition(d) { return strings["dispo." + d.id] || d.label; }

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") node.className = v;
      else if (k === "text") node.textContent = v;
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v === true ? "" : String(v));
    }
    for (const c of children.flat()) {
      if (c === null || c === undefined || c === false) continue;
      node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return node;
  }

  function svg(tag, attrs) {
    const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "text") node.textContent = v; else node.setAttribute(k, String(v));
    }
    return node;
  }

  async function api(method, path, body) {
    const headers = { "Accept": "application/json" };
    if (method !== "GET") {
      headers["Content-Type"] = "application/json";
      if (session && session.csrf) headers["X-CSRF-Token"] = session.csrf;
    }
    const res = await fetch(path, {
      method, headers, credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (res.status === 401) { location.href = "/signin"; throw new Error("signed out"); }
    const text = await res.text();
    const data = text ? JSON.parse(text) : null;
    if (!res.ok) throw new Error((data && data.error) || res.statusText);
    return data;
  }

  let timeFormat = null;
  function time(ms) {
    if (!ms) return "—";
    if (!timeFormat) {
      const options = { year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit",
        minute: "2-digit", second: "2-digit", hour12: false };
      try {
        timeFormat = new Intl.DateTimeFormat(lang, { ...options, timeZone: session && session.timezone });
      } catch (_) {
        timeFormat = new Intl.DateTimeFormat(lang, options);
      }
    }
    return timeFormat.format(new Date(ms));
  }

  // HH:MM:SS for today (in the configured zone), else the date and time.
  let clockFormat = null;
  function clock(ms) {
    if (!ms) return "—";
    if (!clockFormat) {
      const zone = session && session.timezone;
      const make = (o) => { try { return new Intl.DateTimeFormat(lang, { ...o, timeZone: zone }); } catch (_) { return new Intl.DateTimeFormat(lang, o); } };
      clockFormat = { time: make({ hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false }),
        day: make({ year: "numeric", month: "2-digit", day: "2-digit" }) };
    }
    const d = new Date(ms);
    const sameDay = clockFormat.day.format(d) === clockFormat.day.format(new Date());
    return sameDay ? clockFormat.time.format(d) : time(ms);
  }

  function ago(ms, now) {
    if (!ms) return t("wl.never");
    const s = Math.max(0, Math.round(((now || Date.now()) - ms) / 1000));
    if (s < 3600) return Math.round(s / 60) + " " + t("min") + " " + t("time.ago");
    if (s < 86400 * 2) return Math.round(s / 3600) + " " + t("h") + " " + t("time.ago");
    return Math.round(s / 86400) + " " + t("d") + " " + t("time.ago");
  }

  function metric(name) { return (metrics[name] || [name, ""])[0]; }
  function unit(name, fallback) {
    const m = metrics[name];
    return m && m[1] !== undefined ? m[1] : (fallback || "");
  }
  function num(v) { return Number.isInteger(v) ? String(v) : Number(v).toFixed(1); }

  function toast(message) {
    const box = document.getElementById("toast");
    box.textContent = message;
    box.hidden = false;
    clearTimeout(toast.timer);
    toast.timer = setTimeout(() => { box.hidden = true; }, 6000);
  }

  function connection(live) {
    const c = document.getElementById("conn");
    c.hidden = false;
    c.className = "conn " + (live ? "live" : "lost");
    c.textContent = t(live ? "conn.live" : "conn.lost");
  }

  function translatePage() {
    for (const node of document.querySelectorAll("[data-i18n]")) node.textContent = t(node.dataset.i18n);
    const switcher = document.getElementById("lang");
    switcher.textContent = t("lang.switch");
    switcher.addEventListener("click", () => {
      const next = lang === "zh-CN" ? "en" : "zh-CN";
      document.cookie = "vigil_lang=" + next + "; Path=/; Max-Age=31536000; SameSite=Strict";
      location.reload();
    });
  }

  async function start(main) {
    translatePage();
    if (document.body.dataset.page === "signin") { main(); return; }
    try {
      session = await api("GET", "/api/session");
    } catch (e) { toast(e.message); return; }
    document.getElementById("who").textContent = session.name + (session.care_team ? " · " + session.care_team : "");
    const out = document.getElementById("signout");
    if (session.auth) {
      out.hidden = false;
      out.addEventListener("click", async () => {
        try { await api("POST", "/api/session/signout"); } catch (_) { /* signed out anyway */ }
        location.href = "/signin";
      });
    }
    main(session);
  }

  return { t, el, svg, api, time, clock, ago, metric, unit, num, toast, connection, start, lang, disposition,
    get session() { return session; } };
})();
