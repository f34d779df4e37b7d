/**
 * Says in plain words why an https request to a verified registry failed
 * at the TLS layer, and where the fix goes (its certs.d entry, or the
 * engine's insecure registries), so the cache note an operator reads
 * (agent/src/workspace/cache-phase.ts) is actionable on its own.
 */
import type { RegistryRoute } from './registry-transports.js';

/** Certificate chains that do not lead to a CA this node trusts (OpenSSL's names, as Node reports them). */
const UNTRUSTED = new Set([
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_UNTRUSTED',
  'CERT_SIGNATURE_FAILURE',
]);
const OUT_OF_DATE = new Set(['CERT_HAS_EXPIRED', 'CERT_NOT_YET_VALID']);

/** A sentence for a TLS failure reaching `where` (host[:port]) on `route`; null when `err` is not one. */
export function tlsFailure(err: unknown, route: RegistryRoute, where: string): string | null {
  const cause = (err as { cause?: { code?: unknown; message?: unknown } } | null)?.cause;
  const code = typeof cause?.code === 'string' ? cause.code : '';
  const text = typeof cause?.message === 'string' ? cause.message : '';
  const own = where === route.host;
  const who = own ? `registry ${where}` : `${where} (reached for registry ${route.host})`;
  const cas = route.certs?.ca.length ?? 0;
  if (UNTRUSTED.has(code)) {
    const tried = cas > 0 ? `, not even with the ${cas} CA file(s) in ${route.certs!.dir}` : '';
    return own
      ? `${who} presented a TLS certificate this node does not trust${tried}: put the CA that signed it in ${route.certsPath}/ as a .crt file (as dockerd reads it)`
      : `${who} presented a TLS certificate this node does not trust${tried}`;
  }
  if (OUT_OF_DATE.has(code)) return `${who} presented a TLS certificate that has expired or is not valid yet`;
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') return `${who} presented a TLS certificate made out to another name`;
  if (
    code === 'ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED' ||
    /alert (certificate required|bad certificate|unknown ca|certificate unknown)/.test(text)
  ) {
    const have = route.certs?.clientPairs.map((p) => p.name).join(', ');
    return `${who} refused the TLS connection without a client certificate it accepts (${
      have ? `it did not take ${have} from ${route.certs!.dir}` : `none in ${route.certsPath}/`
    }; a pair goes there as NAME.cert with NAME.key, as dockerd reads it)`;
  }
  if (code === 'ERR_SSL_WRONG_VERSION_NUMBER' || /wrong version number|packet length too long/.test(text)) {
    return `${who} does not answer over TLS, and the engine does not treat it as an insecure registry (dockerd would not use plain http for it either: list it in the engine's insecure-registries)`;
  }
  return null;
}
