import { WarmstartError } from '../errors.js';

/**
 * The engine reports registry trouble as free text in the pull/push progress
 * stream. This maps that text to a stable code once, here, so nothing else
 * branches on message text.
 */
export function classifyRegistryMessage(message: string, during: 'pull' | 'push'): WarmstartError {
  const m = message.toLowerCase();
  const detail = message.slice(0, 500);
  if (/connection refused|no such host|i\/o timeout|dial tcp|connection reset|\beof\b|tls handshake timeout|network is unreachable/.test(m)) {
    return new WarmstartError('REGISTRY_UNREACHABLE', `registry unreachable during ${during}`, { detail });
  }
  if (/unauthorized|no basic auth credentials|authentication required|incorrect username or password/.test(m)) {
    return new WarmstartError('REGISTRY_AUTH_FAILED', `registry refused the credentials during ${during}`, { detail });
  }
  if (during === 'push' && /denied|method not allowed|\b405\b|forbidden|\b403\b|unsupported/.test(m)) {
    return new WarmstartError('REGISTRY_PUSH_DENIED', 'registry denied the push', { detail });
  }
  if (during === 'pull' && /manifest unknown|not found|does not exist|name unknown/.test(m)) {
    return new WarmstartError('CACHE_IMAGE_MISSING', 'no cache image at that ref yet', { detail });
  }
  if (during === 'pull' && /denied|forbidden/.test(m)) {
    return new WarmstartError('REGISTRY_AUTH_FAILED', 'registry denied the pull', { detail });
  }
  // The catch-all: the engine's own words are the only clue (an HTTP status,
  // a TLS problem), so they go into the message, which becomes cache.reason
  // and push.reason.
  const cause = message.split('\n')[0]!.trim().slice(0, 200);
  return new WarmstartError('REGISTRY_ERROR', cause ? `registry error during ${during}: ${cause}` : `registry error during ${during}`, { detail });
}
