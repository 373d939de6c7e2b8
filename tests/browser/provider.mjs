// A real OpenID provider for the browser tests: node's `oidc-provider`
// package (authorization code flow, PKCE, signed ID tokens, discovery,
// JWKS), with one client (the console) and a few test accounts, among them
// one whose groups map to no Kith role.
//
// Usage: node provider.mjs REDIRECT_URL CLIENT_SECRET
// Listens on 127.0.0.1, a free port, with the issuer http://localhost:PORT
// (another site than the console on 127.0.0.1, as a real provider is), and
// prints one line: {"issuer": "..."}. Stops when its standard input closes.
//
// Sign-in is oidc-provider's own development login and consent pages
// (any password is accepted; the login is the account id).

import http from 'node:http';
import Provider from 'oidc-provider';

const [redirectUrl, clientSecret] = process.argv.slice(2);
if (!redirectUrl || !clientSecret) {
  console.error('usage: node provider.mjs REDIRECT_URL CLIENT_SECRET');
  process.exit(2);
}

// The accounts: sub, display name, team and the provider's groups.
export const ACCOUNTS = {
  'amara.okafor': { name: 'Amara Okafor', team: 'MASH', groups: ['all-staff', 'kith-social-workers'] },
  'dr.lee': { name: 'Dr Chris Lee', team: 'Emergency Department', groups: ['kith-ed-clinicians'] },
  'canteen.cook': { name: 'Casey Cook', team: 'Catering', groups: ['all-staff', 'catering'] },
};

const server = http.createServer();
server.listen(0, '127.0.0.1', () => {
  const { port } = server.address();
  const issuer = `http://localhost:${port}`;
  const provider = new Provider(issuer, {
    clients: [
      {
        client_id: 'kith-console',
        client_secret: clientSecret,
        redirect_uris: [redirectUrl],
        response_types: ['code'],
        grant_types: ['authorization_code'],
        token_endpoint_auth_method: 'client_secret_basic',
      },
    ],
    async findAccount(ctx, id) {
      const account = ACCOUNTS[id];
      if (!account) return undefined;
      return {
        accountId: id,
        async claims() {
          return { sub: id, name: account.name, team: account.team, groups: account.groups };
        },
      };
    },
    claims: {
      openid: ['sub'],
      profile: ['name'],
      kith: ['team', 'groups'],
    },
    scopes: ['openid', 'profile', 'kith'],
    // The claims of the scopes asked for go in the ID token itself.
    conformIdTokenClaims: false,
    pkce: { required: () => true },
    features: { devInteractions: { enabled: true } },
    cookies: { keys: ['kith-browser-test-cookie-key'] },
  });
  // Development warnings (generated keys, dev interactions) go to stderr.
  server.on('request', provider.callback());
  process.stdout.write(JSON.stringify({ issuer }) + '\n');
});

process.stdin.resume();
process.stdin.on('end', () => process.exit(0));
process.stdin.on('close', () => process.exit(0));
