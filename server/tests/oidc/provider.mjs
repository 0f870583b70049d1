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
  }, {
    // A care-team application calling Vigil's gRPC API with the provider's access tokens.
    client_id: "ward-app",
    client_secret: "ward-app-secret",
    redirect_uris: [],
    grant_types: ["client_credentials"],
    response_types: [],
  }],
  features: {
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: (ctx) => (ctx.oidc.client?.clientId === "ward-app" ? "urn:vigil" : undefined),
      useGrantedResource: () => true,
      getResourceServerInfo: () => ({
        scope: "alerts",
        audience: "vigil",
        accessTokenFormat: "jwt",
        jwt: { sign: { alg: "RS256" } },
      }),
    },
  },
  async extraTokenClaims(ctx, token) {
    return token.clientId === "ward-app" ? { groups: ["cardio-nurses"] } : undefined;
  },
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
