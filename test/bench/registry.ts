/**
 * The few registry calls the bench needs (distribution 2.8 with delete
 * enabled): tag lists, manifest HEAD/GET/PUT/DELETE. Distribution 2.8 cannot
 * delete a tag, only a manifest by digest, which drops every tag pointing at
 * it; so "delete the exact tag" is: save the moving tag's manifest, delete the
 * exact tags' manifests, and put the moving tag back if it went with them.
 */

const ACCEPT = [
  'application/vnd.docker.distribution.manifest.v2+json',
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.oci.image.index.v1+json',
].join(', ');

export interface SavedManifest {
  body: Buffer;
  contentType: string;
  digest: string;
}

export class Registry {
  private readonly auth: string;

  constructor(
    readonly host: string,
    user: string,
    password: string,
  ) {
    this.auth = `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
  }

  private async call(method: string, path: string, init: { body?: Buffer; headers?: Record<string, string> } = {}): Promise<Response> {
    return fetch(`http://${this.host}/v2/${path}`, {
      method,
      headers: { authorization: this.auth, accept: ACCEPT, ...init.headers },
      ...(init.body ? { body: new Uint8Array(init.body) } : {}),
    });
  }

  async ping(): Promise<boolean> {
    try {
      return (await this.call('GET', '')).ok;
    } catch {
      return false;
    }
  }

  /** Tags of a repository path (`ns/owner/name`); [] when it does not exist. */
  async tags(repo: string): Promise<string[]> {
    const r = await this.call('GET', `${repo}/tags/list`);
    if (r.status === 404) return [];
    if (!r.ok) throw new Error(`tags/list ${repo}: HTTP ${r.status}`);
    const body = (await r.json()) as { tags?: string[] | null };
    return body.tags ?? [];
  }

  /** The digest a tag points at, or null when the tag is not there. */
  async digest(repo: string, tag: string): Promise<string | null> {
    const r = await this.call('HEAD', `${repo}/manifests/${tag}`);
    if (r.status === 404) return null;
    if (!r.ok) throw new Error(`HEAD ${repo}:${tag}: HTTP ${r.status}`);
    return r.headers.get('docker-content-digest');
  }

  async getManifest(repo: string, reference: string): Promise<SavedManifest | null> {
    const r = await this.call('GET', `${repo}/manifests/${reference}`);
    if (r.status === 404) return null;
    if (!r.ok) throw new Error(`GET manifest ${repo}:${reference}: HTTP ${r.status}`);
    return {
      body: Buffer.from(await r.arrayBuffer()),
      contentType: r.headers.get('content-type') ?? 'application/vnd.docker.distribution.manifest.v2+json',
      digest: r.headers.get('docker-content-digest') ?? '',
    };
  }

  /** Deletes a manifest by digest (and with it every tag pointing at it). 404 is fine. */
  async deleteManifest(repo: string, digest: string): Promise<void> {
    const r = await this.call('DELETE', `${repo}/manifests/${digest}`);
    if (!r.ok && r.status !== 404) throw new Error(`DELETE manifest ${repo}@${digest}: HTTP ${r.status} ${await r.text()}`);
  }

  /** Unlinks a blob from a repository (the data stays until the registry's garbage collection). */
  async deleteBlob(repo: string, digest: string): Promise<void> {
    await this.call('DELETE', `${repo}/blobs/${digest}`).catch(() => undefined);
  }

  /** Removes everything under a repository path: its manifests and the links to their blobs. */
  async purgeRepository(repo: string): Promise<void> {
    const tags = await this.tags(repo).catch(() => [] as string[]);
    const manifests = new Map<string, SavedManifest>();
    for (const t of tags) {
      const m = await this.getManifest(repo, t).catch(() => null);
      if (m?.digest) manifests.set(m.digest, m);
    }
    for (const [digest, m] of manifests) {
      await this.deleteManifest(repo, digest).catch(() => undefined);
      try {
        const parsed = JSON.parse(m.body.toString('utf8')) as { config?: { digest?: string }; layers?: { digest?: string }[] };
        const blobs = [parsed.config?.digest, ...(parsed.layers ?? []).map((l) => l.digest)].filter((d): d is string => !!d);
        for (const b of blobs) await this.deleteBlob(repo, b);
      } catch {
        // not a manifest we can read: the manifest is gone, that is enough
      }
    }
  }
}
