#!/usr/bin/env node
// Independent OpenID Connect relying party (npm openid-client 6.x), driven by the Python e2e tests.
//
//   node rp.mjs --issuer URL --client-id ID --client-secret SECRET --redirect-uri URI
//               [--scope "openid profile email offline_access"]
//               [--token-endpoint-auth-method client_secret_basic|client_secret_post]
//               [--prompt consent] [--par] [--timeout 120]
//
// 1. discovery, then stdout: {"authorization_url": "..."}   (PKCE S256, state, nonce; with --par the
//    request is pushed to the pushed_authorization_request_endpoint first, RFC 9126, and the URL
//    carries only client_id and request_uri)
// 2. stdin: ONE line, the full callback URL the browser was redirected to
// 3. code exchange (state, PKCE, nonce, iss and the ID token checked by the library against the
//    JWKS), userinfo, refresh (when a refresh token was issued), reuse of the OLD refresh token,
//    introspection of the newest access token, revocation of the newest refresh token (or of the
//    access token when there is none), introspection again.
// 4. stdout: one final JSON line (see README.md). Exit 0 when every attempted step behaved as the
//    library expects; otherwise exit 1 with a one-line message on stderr. Steps the provider does
//    not advertise (no introspection/revocation endpoint, no refresh token) go to "skipped".
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';

import * as client from 'openid-client';

const USAGE = 'usage: node rp.mjs --issuer URL --client-id ID --client-secret SECRET --redirect-uri URI '
  + '[--scope "openid profile email offline_access"] [--token-endpoint-auth-method client_secret_basic|client_secret_post] '
  + '[--prompt PROMPT] [--par] [--timeout SECONDS]';

function fail(message, code = 2) {
  process.stderr.write(`rp.mjs: ${message}\n`);
  process.exit(code);
}

let args;
try {
  ({ values: args } = parseArgs({
    options: {
      issuer: { type: 'string' },
      'client-id': { type: 'string' },
      'client-secret': { type: 'string' },
      'redirect-uri': { type: 'string' },
      scope: { type: 'string', default: 'openid profile email offline_access' },
      'token-endpoint-auth-method': { type: 'string', default: 'client_secret_basic' },
      prompt: { type: 'string' },
      par: { type: 'boolean', default: false },
      timeout: { type: 'string', default: '120' },
    },
    strict: true,
  }));
} catch (err) {
  fail(`${err.message}; ${USAGE}`);
}
for (const name of ['issuer', 'client-id', 'client-secret', 'redirect-uri']) {
  if (!args[name]) fail(`--${name} is required; ${USAGE}`);
}
const AUTH_METHODS = {
  client_secret_basic: client.ClientSecretBasic,
  client_secret_post: client.ClientSecretPost,
};
if (!AUTH_METHODS[args['token-endpoint-auth-method']]) {
  fail(`--token-endpoint-auth-method must be one of ${Object.keys(AUTH_METHODS).join(', ')}`);
}

const result = {
  id_token_claims: null,
  userinfo: null,
  refreshed: false,
  rotated: null, // did the refresh return a different refresh token
  reuse_error: null, // OAuth error code of the reuse of the OLD refresh token, null if it was accepted
  reuse_accepted: null,
  introspection_before_reuse_active: null,
  introspection_active: null,
  revoked_token_type: null,
  introspection_after_revoke_active: null,
  skipped: [],
  errors: [],
};

function describe(err) {
  // "Name: error: HTTP status: message (code)", then the same for each non-JSON `cause`.
  const parts = [];
  for (let e = err, depth = 0; e && depth < 4; e = e.cause, depth += 1) {
    if (typeof e !== 'object' || !(e instanceof Error)) break;
    const bits = [e.name || 'Error'];
    if (e.error) bits.push(e.error);
    if (e.status) bits.push(`HTTP ${e.status}`);
    bits.push(e.error_description || e.message);
    if (Array.isArray(e.cause)) bits.push(JSON.stringify(e.cause)); // WWW-Authenticate challenges
    parts.push(bits.join(': ') + (e.code ? ` (${e.code})` : ''));
  }
  return parts.length ? parts.join(' <- ') : String(err);
}

function readOneLine(timeoutSeconds) {
  return new Promise((resolve, reject) => {
    const rl = createInterface({ input: process.stdin, terminal: false });
    const timer = setTimeout(() => {
      rl.close();
      reject(new Error(`no callback URL on stdin within ${timeoutSeconds}s`));
    }, timeoutSeconds * 1000);
    let done = false;
    rl.once('line', (line) => {
      done = true;
      clearTimeout(timer);
      rl.close();
      resolve(line.trim());
    });
    rl.once('close', () => {
      clearTimeout(timer);
      if (!done) reject(new Error('stdin closed before a callback URL was given'));
    });
  });
}

function finish() {
  process.stdout.write(`${JSON.stringify(result)}\n`);
  if (result.errors.length) {
    process.stderr.write(`rp.mjs: ${result.errors.length} step(s) failed; first: ${result.errors[0]}\n`);
    process.exit(1);
  }
  process.exit(0);
}

// Run one step; record a failure instead of throwing.
async function step(name, fn) {
  try {
    return await fn();
  } catch (err) {
    result.errors.push(`${name}: ${describe(err)}`);
    return undefined;
  }
}

async function introspect(config, token) {
  const response = await client.tokenIntrospection(config, token, { token_type_hint: 'access_token' });
  if (typeof response.active !== 'boolean') throw new Error('introspection response has no boolean "active"');
  return response.active;
}

async function main() {
  const config = await step('discovery', () => client.discovery(
    new URL(args.issuer),
    args['client-id'],
    { client_secret: args['client-secret'] },
    AUTH_METHODS[args['token-endpoint-auth-method']](args['client-secret']),
    { execute: [client.allowInsecureRequests], timeout: 15 },
  ));
  if (!config) return;
  const metadata = config.serverMetadata();

  const codeVerifier = client.randomPKCECodeVerifier();
  const state = client.randomState();
  const nonce = client.randomNonce();
  const params = {
    redirect_uri: args['redirect-uri'],
    scope: args.scope,
    code_challenge: await client.calculatePKCECodeChallenge(codeVerifier),
    code_challenge_method: 'S256',
    state,
    nonce,
  };
  if (args.prompt) params.prompt = args.prompt;
  const authorizationUrl = await step('authorization url', () => (args.par
    ? client.buildAuthorizationUrlWithPAR(config, params)
    : client.buildAuthorizationUrl(config, params)));
  if (!authorizationUrl) return;
  process.stdout.write(`${JSON.stringify({ authorization_url: authorizationUrl.href })}\n`);

  const callback = await step('callback url', async () => new URL(await readOneLine(Number(args.timeout))));
  if (!callback) return;

  // Checks state (and iss when the provider advertises RFC 9207), PKCE, the ID token's signature
  // against the JWKS, iss, aud, exp, iat, nonce, and at_hash when present.
  const tokens = await step('authorization code grant', () => client.authorizationCodeGrant(config, callback, {
    pkceCodeVerifier: codeVerifier,
    expectedState: state,
    expectedNonce: nonce,
    idTokenExpected: true,
  }));
  if (!tokens) return;
  const claims = tokens.claims();
  result.id_token_claims = claims ?? null;
  if (!claims) {
    result.errors.push('authorization code grant: no ID token');
    return;
  }

  if (metadata.userinfo_endpoint) {
    result.userinfo = (await step('userinfo', () => client.fetchUserInfo(config, tokens.access_token, claims.sub))) ?? null;
  } else {
    result.skipped.push('userinfo: no userinfo_endpoint');
  }

  let accessToken = tokens.access_token;
  let newRefreshToken = null;
  const oldRefreshToken = tokens.refresh_token;
  if (!oldRefreshToken) {
    result.skipped.push('refresh: no refresh_token was issued');
  } else {
    const refreshed = await step('refresh token grant', () => client.refreshTokenGrant(config, oldRefreshToken));
    if (refreshed) {
      result.refreshed = true;
      accessToken = refreshed.access_token;
      newRefreshToken = refreshed.refresh_token ?? oldRefreshToken;
      result.rotated = Boolean(refreshed.refresh_token) && refreshed.refresh_token !== oldRefreshToken;
      if (refreshed.id_token && refreshed.claims()?.sub !== claims.sub) {
        result.errors.push('refresh token grant: ID token sub differs from the first ID token');
      }
      if (metadata.introspection_endpoint) {
        result.introspection_before_reuse_active = (await step(
          'introspection (before reuse)', () => introspect(config, accessToken),
        )) ?? null;
      }
      // Present the OLD refresh token again. A rotating provider should answer invalid_grant.
      try {
        await client.refreshTokenGrant(config, oldRefreshToken);
        result.reuse_accepted = true;
      } catch (err) {
        if (err instanceof client.ResponseBodyError) {
          result.reuse_accepted = false;
          result.reuse_error = err.error;
        } else {
          result.errors.push(`refresh token reuse: ${describe(err)}`);
        }
      }
    }
  }

  if (metadata.introspection_endpoint) {
    result.introspection_active = (await step('introspection', () => introspect(config, accessToken))) ?? null;
  } else {
    result.skipped.push('introspection: no introspection_endpoint');
  }

  if (metadata.revocation_endpoint) {
    const [token, hint] = newRefreshToken ? [newRefreshToken, 'refresh_token'] : [accessToken, 'access_token'];
    const revoked = await step('revocation', async () => {
      await client.tokenRevocation(config, token, { token_type_hint: hint });
      return true;
    });
    if (revoked) {
      result.revoked_token_type = hint;
      if (metadata.introspection_endpoint) {
        result.introspection_after_revoke_active = (await step(
          'introspection after revocation', () => introspect(config, accessToken),
        )) ?? null;
      }
    }
  } else {
    result.skipped.push('revocation: no revocation_endpoint');
  }
}

main().catch((err) => result.errors.push(`unexpected: ${describe(err)}`)).finally(finish);
