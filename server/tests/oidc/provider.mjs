// A real OpenID Connect provider for Vigil's sign-in tests (panva/oidc-provider, certified):
//   node provider.mjs PORT REDIRECT_URI
// Accounts: "kim" (group cardio-nurses), "lee" (group finance: no role in Vigil). The
// development login form accepts any password. Consent is granted on the first login.
import Provider from "oidc-provider";

const [port, redirects] = process.argv.slice(2);
const accounts = {
  kim: { name: "Kim Li", groups: ["cardio-nurses"] },
  lee: { name: "Lee Wu", groups: ["finance"] },
};

const provider = new Provider(`http://127.0.0.1:${port}`, {
  clients: [{
    client_id: "vigil",
    client_secret: "vigil-test-secret",
    redirect_uris: redirects.split(","),
    grant_types: ["authorization_code"],
    response_types: ["code"],
  }],
  pkce: { required: () => true },
  scopes: ["openid", "profile"],
  claims: { openid: ["sub"], profile: ["name", "preferred_username", "groups"] },
  // Profile claims in the ID token itself (Vigil reads the groups there).
  conformIdTokenClaims: false,
  async findAccount(ctx, id) {
    const account = accounts[id];
    if (!account) return undefined;
    return {
      accountId: id,
      async claims() {
        return { sub: id, name: account.name, preferred_username: id, groups: account.groups };
      },
    };
  },
  async loadExistingGrant(ctx) {
    const grant = new ctx.oidc.provider.Grant({
      clientId: ctx.oidc.client.clientId,
      accountId: ctx.oidc.session.accountId,
    });
    grant.addOIDCScope("openid profile");
    grant.addOIDCClaims(["name", "preferred_username", "groups"]);
    await grant.save();
    return grant;
  },
});
provider.listen(Number(port), "127.0.0.1", () => console.log(`listening ${port}`));
