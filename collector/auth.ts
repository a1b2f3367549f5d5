/**
 * Bearer-token auth (RFC 6750 `Authorization: Bearer <token>`), one token per
 * tenant. Tokens are compared as SHA-256 digests with timingSafeEqual, and
 * every configured token is compared on every request, so neither the
 * token's length nor which token came close leaks through response timing.
 */
import { createHash, timingSafeEqual } from 'node:crypto';

const digest = (token: string): Buffer => createHash('sha256').update(token, 'utf8').digest();

/** Maps an Authorization header to the tenant of its token; undefined = not authenticated. */
export type Authenticate = (authorization: string | undefined) => string | undefined;

export function bearerAuthenticator(tokens: Record<string, string>): Authenticate {
  const known = Object.entries(tokens).map(([token, tenant]) => ({ digest: digest(token), tenant }));
  return (authorization) => {
    const match = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(authorization ?? '');
    if (!match) return undefined;
    const presented = digest(match[1]!);
    let tenant: string | undefined;
    for (const k of known) {
      if (timingSafeEqual(k.digest, presented)) tenant = k.tenant;
    }
    return tenant;
  };
}
