// A real OpenID provider (npm `oidc-provider`, OpenID-certified) on 127.0.0.1, for the relying-party
// tests of crates/oidc. Configuration comes from the environment:
//
//   OP_PORT                        port to listen on; 0 or unset picks a free one (race-free: the
//                                  socket is bound first, the issuer is built from its port)
//   OP_CLIENTS                     JSON array of client metadata: client_id, client_secret,
//                                  redirect_uris, optional backchannel_logout_uri
//   OP_ACCOUNTS                    JSON array of accounts: sub, email, email_verified, name
//                                  (email_verified is passed through as given, strings included,
//                                  to imitate providers that send "true"/"True")
//   OP_SIGNING_KEY                 path of a private JWK (RSA) to sign with; unset: a fresh key
//   OP_ID_TOKEN_TTL                ID-token lifetime in seconds (default 600)
//   OP_SCOPE_CLAIMS_IN_ID_TOKEN    "0" keeps scope claims (email, name) out of the ID token, as
//                                  many providers do: they are then only in UserInfo (default "1")
//
// `node provider.mjs --generate-key PATH` writes a fresh private RSA JWK to PATH and exits, so
// two providers can share one key (the wrong-issuer test needs tokens that differ only by issuer).
//
// Once listening it prints one line `READY <issuer>` on stdout.
//
// Test-only choices, each one a default of oidc-provider that a test relying party cannot live with:
// - devInteractions (its built-in login page) stay on; any listed `sub` logs in with any password;
// - consent is granted automatically for the scopes asked (loadExistingGrant makes the grant);
// - the SSRF guard on outgoing requests is removed, because the back-channel logout receiver of
//   the tests is on 127.0.0.1, which the guard refuses as a special-use address;
// - conformIdTokenClaims is off unless OP_SCOPE_CLAIMS_IN_ID_TOKEN=0, so that scope claims are
//   in the ID token when asked for.
import { generateKeyPair, randomUUID } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { promisify } from 'node:util';

import Provider from 'oidc-provider';

// The asynchronous key generation on purpose: Node 20's generateKeyPairSync can deadlock when a
// garbage collection runs while the key is exported (seen here: the main thread waits forever on
// the KeyGenJob mutex).
async function freshSigningKey() {
  const { privateKey } = await promisify(generateKeyPair)('rsa', { modulusLength: 2048 });
  return { ...privateKey.export({ format: 'jwk' }), kid: randomUUID(), alg: 'RS256', use: 'sig' };
}

if (process.argv[2] === '--generate-key') {
  writeFileSync(process.argv[3], JSON.stringify(await freshSigningKey()), { mode: 0o600 });
  process.exit(0);
}

function jsonEnv(name, fallback) {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  try {
    return JSON.parse(raw);
  } catch (err) {
    console.error(`${name} is not valid JSON: ${err.message}`);
    process.exit(2);
  }
}

const clients = jsonEnv('OP_CLIENTS', []);
const accounts = new Map(jsonEnv('OP_ACCOUNTS', []).map((a) => [a.sub, a]));
const signingKey = process.env.OP_SIGNING_KEY
  ? JSON.parse(readFileSync(process.env.OP_SIGNING_KEY, 'utf8'))
  : await freshSigningKey();
const idTokenTtl = Number(process.env.OP_ID_TOKEN_TTL || 600);
const scopeClaimsInIdToken = process.env.OP_SCOPE_CLAIMS_IN_ID_TOKEN !== '0';

const server = createServer();
server.listen(Number(process.env.OP_PORT || 0), '127.0.0.1', () => {
  const { port } = server.address();
  const issuer = `http://127.0.0.1:${port}`;

  const provider = new Provider(issuer, {
    clients: clients.map((c) => ({
      grant_types: ['authorization_code'],
      response_types: ['code'],
      ...c,
      ...(c.backchannel_logout_uri ? { backchannel_logout_session_required: true } : {}),
    })),
    jwks: { keys: [signingKey] },
    async findAccount(_ctx, sub) {
      const account = accounts.get(sub);
      if (!account) return undefined;
      return {
        accountId: sub,
        async claims() {
          const claims = { sub };
          if (account.email !== undefined) claims.email = account.email;
          if (account.email_verified !== undefined) claims.email_verified = account.email_verified;
          if (account.name !== undefined) claims.name = account.name;
          return claims;
        },
      };
    },
    claims: {
      openid: ['sub'],
      email: ['email', 'email_verified'],
      profile: ['name'],
    },
    conformIdTokenClaims: !scopeClaimsInIdToken,
    features: {
      devInteractions: { enabled: true },
      backchannelLogout: { enabled: true },
      rpInitiatedLogout: { enabled: true },
    },
    async loadExistingGrant(ctx) {
      const grantId = ctx.oidc.result?.consent?.grantId
        || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
      if (grantId) return ctx.oidc.provider.Grant.find(grantId);
      const grant = new ctx.oidc.provider.Grant({
        clientId: ctx.oidc.client.clientId,
        accountId: ctx.oidc.session.accountId,
      });
      grant.addOIDCScope([...ctx.oidc.requestParamScopes].join(' '));
      await grant.save();
      return grant;
    },
    fetch(url, options) {
      // See the header: the tests' back-channel receiver is on loopback.
      const { dispatcher, ...rest } = options;
      return globalThis.fetch(url, rest);
    },
    ttl: {
      IdToken: idTokenTtl,
      AccessToken: 600,
      AuthorizationCode: 60,
      Interaction: 600,
      Session: 3600,
      Grant: 3600,
    },
    pkce: { required: () => true },
  });
  provider.on('backchannel.error', (_ctx, err, client) => {
    console.error(`back-channel logout to ${client.clientId} failed: ${err.message}`);
  });
  provider.on('server_error', (_ctx, err) => console.error(`server_error: ${err.stack}`));

  server.on('request', provider.callback());
  console.log(`READY ${issuer}`);
});

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => process.exit(0));
}
