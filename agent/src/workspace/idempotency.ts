import { createHash } from 'node:crypto';
import type { CreateWorkspaceBody } from '../../../shared/src/api.js';
import { canonicalJson } from '../cache/content-key.js';
import { WarmstartError } from '../errors.js';
import type { WorkspaceRecord, WorkspaceStatus, WorkspaceStore } from '../state/workspace-store.js';

/**
 * Recognising a repeated `POST /v1/workspaces` (docs/api.md "Idempotency").
 * A control plane that is unsure whether its POST arrived sends it again: the
 * same body from the same caller, or the same `Idempotency-Key`, is answered
 * with the workspace the first one made instead of a refusal. Bodies carry
 * secrets (a git token, a registry password, the callback's token), so the
 * record (workspace/lifecycle.ts writes it) keeps only SHA-256 digests of
 * what was asked, never the body.
 */

/** What the record keeps of the POST that queued its run: digests, hex, `sha256:` first. */
export interface RequestDigest {
  /** of the caller and the body, keys in any order */
  body: string;
  /** of the caller and its Idempotency-Key; null without one */
  key: string | null;
}

/**
 * The statuses in which a repeat of the POST is answered with the workspace.
 * A `failed` workspace, or one deleted without purge, is prepared again by a
 * POST instead (workspace/lifecycle.ts `queue`): that is what a retry of a
 * failure means. Its own Idempotency-Key still answers it as it is.
 */
const REPEATABLE: ReadonlySet<WorkspaceStatus> = new Set(['queued', 'creating', 'ready', 'recovery']);

const sha256 = (text: string): string => `sha256:${createHash('sha256').update(text, 'utf8').digest('hex')}`;

/**
 * The digests of one POST. `requester` names the caller (server/routes/
 * workspace-routes.ts `requesterOf`): a body or key is only ever matched with
 * the same caller's.
 */
export function requestDigest(body: CreateWorkspaceBody, requester: string, idempotencyKey?: string | null): RequestDigest {
  return {
    body: sha256(canonicalJson({ requester, body: withoutSecrets(body) })),
    key: idempotencyKey ? sha256(canonicalJson({ requester, idempotencyKey })) : null,
  };
}

/**
 * The body as a repeat is judged: each secret only as "given". A control
 * plane that retries with a freshly minted git token or callback token (a
 * GitHub installation token lasts an hour) is asking for the same workspace;
 * the first run's credentials were already used. And the record's digest
 * then holds no secret bytes at all, not even hashed.
 */
function withoutSecrets(body: CreateWorkspaceBody): unknown {
  return {
    ...body,
    ...(body.gitToken === undefined ? {} : { gitToken: true }),
    ...(body.cache?.password === undefined ? {} : { cache: { ...body.cache, password: true } }),
    ...(body.callback === undefined ? {} : { callback: { ...body.callback, token: true } }),
  };
}

/** The part of a record (or of a test's stand-in) a repeat is judged on. */
export type Repeatable = Pick<WorkspaceRecord, 'id' | 'status' | 'request'>;

/**
 * Whether a POST of workspace `id` repeats an earlier one, given the record
 * that holds its Idempotency-Key (`keyHolder`, null when none does or it
 * has none) and the record of `id`. Resolves with the record to answer with,
 * or null for a POST to be taken as new. A key used before with another body
 * or for another workspace is IDEMPOTENCY_KEY_REUSED (422).
 */
export function repeatOf<R extends Repeatable>(id: string, digest: RequestDigest, keyHolder: R | null, record: R | null): R | null {
  if (digest.key !== null && keyHolder !== null) {
    if (keyHolder.id === id && keyHolder.request?.body === digest.body) return keyHolder;
    throw new WarmstartError(
      'IDEMPOTENCY_KEY_REUSED',
      'this Idempotency-Key was used for another request: a key names one request, send a new key with a new request',
    );
  }
  if (record !== null && REPEATABLE.has(record.status) && record.request?.body === digest.body) return record;
  return null;
}

/**
 * repeatOf against the records on disk: the one holding the key (a key may
 * name a request for any id, so every record is asked; a node holds tens of
 * workspaces, not thousands) and the one of `id`. `onUnreadable` hears of a
 * record that cannot be read (it is left out).
 */
export async function findRepeat(
  store: Pick<WorkspaceStore, 'list' | 'load'>,
  id: string,
  digest: RequestDigest,
  onUnreadable?: (id: string, err: unknown) => void,
): Promise<WorkspaceRecord | null> {
  const keyHolder = digest.key === null ? null : ((await store.list(onUnreadable)).find((r) => r.request?.key === digest.key) ?? null);
  return repeatOf(id, digest, keyHolder, await store.load(id));
}

/**
 * Reads an `Idempotency-Key` header: a string of 1 to 255 visible ASCII
 * characters, sent quoted (`"..."`, the structured-field string form) or bare.
 * Absent is null; anything else, the header twice included (node joins the
 * two with `, `), is INVALID_ARGUMENT.
 */
export function parseIdempotencyKey(header: string | string[] | undefined): string | null {
  if (header === undefined) return null;
  const raw = Array.isArray(header) ? null : header.trim();
  let key: string | null = null;
  if (raw !== null) {
    const quoted = /^"((?:[\x20\x21\x23-\x5b\x5d-\x7e]|\\["\\])*)"$/.exec(raw);
    if (quoted) key = quoted[1]!.replace(/\\(["\\])/g, '$1');
    else if (/^[\x21-\x7e]+$/.test(raw) && !raw.includes('"') && !raw.includes(',')) key = raw;
  }
  if (key === null || key.length < 1 || key.length > 255) {
    throw new WarmstartError('INVALID_ARGUMENT', 'Idempotency-Key must be one key of 1 to 255 visible ASCII characters, quoted or bare');
  }
  return key;
}
