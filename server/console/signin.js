// Sign-in: with the hospital's account (OpenID Connect), where configured, or with a token
// (from `vigil token create`) exchanged for a session cookie.
"use strict";
V.start(async () => {
  const token = V.el("input", { type: "password", name: "token", id: "token", autocomplete: "current-password", required: true });
  const sso = V.el("p", { hidden: true }, V.el("a", { id: "oidc", class: "button", href: "/auth/login" }, V.t("signin.oidc")));
  document.getElementById("main").append(V.el("form", { class: "signin", onsubmit: async (e) => {
    e.preventDefault();
    try {
      await V.api("POST", "/api/session", { token: token.value });
      location.href = "/";
    } catch (err) { V.toast(err.message); }
  } },
    V.el("h1", {}, V.t("signin.title")), sso,
    V.el("label", { for: "token" }, V.t("signin.token")), token,
    V.el("button", { type: "submit", id: "signin" }, V.t("signin.go"))));
  try { sso.hidden = !(await V.api("GET", "/auth/providers")).oidc; } catch (e) { /* tokens only */ }
});
