// Sign-in: a token (from `vigil token create`) exchanged for a session cookie.
"use strict";
V.start(() => {
  const token = V.el("input", { type: "password", name: "token", id: "token", autocomplete: "current-password", required: true });
  document.getElementById("main").append(V.el("form", { class: "signin", onsubmit: async (e) => {
    e.preventDefault();
    try {
      await V.api("POST", "/api/session", { token: token.value });
      location.href = "/";
    } catch (err) { V.toast(err.message); }
  } },
    V.el("h1", {}, V.t("signin.title")),
    V.el("label", { for: "token" }, V.t("signin.token")), token,
    V.el("button", { type: "submit", id: "signin" }, V.t("signin.go"))));
});
