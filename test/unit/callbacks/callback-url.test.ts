import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  assertCallbackUrl,
  callbackOrigins,
  callbackTarget,
  callbackUrlProblem,
  type CallbackPolicy,
} from '../../../agent/src/callbacks/callback-url.js';
import { FileOutbox } from '../../../agent/src/callbacks/file-outbox.js';
import { refusedAddress } from '../../../agent/src/callbacks/refused-address.js';
import { serveConfigFromEnv } from '../../../agent/src/config/serve-config.js';
import { captureLogger, sleep, startControlPlane } from './control-plane.js';

/** A resolver with fixed answers: no real DNS in unit tests. */
const dns =
  (table: Record<string, string[]>): CallbackPolicy['resolve'] =>
  async (host) => {
    const a = table[host];
    if (!a) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: 'ENOTFOUND' });
    return a;
  };
const open: CallbackPolicy = { origins: new Set(), resolve: dns({ 'cp.example.com': ['93.184.216.34', '2606:2800:220:1::1'] }) };

describe('refusedAddress', () => {
  it.each([
    ['127.0.0.1', 'loopback'],
    ['127.255.0.9', 'loopback'],
    ['10.1.2.3', 'RFC 1918'],
    ['172.16.0.1', 'RFC 1918'],
    ['172.31.255.255', 'RFC 1918'],
    ['192.168.1.1', 'RFC 1918'],
    ['169.254.169.254', 'link-local'],
    ['100.64.0.1', 'carrier-grade NAT'],
    ['100.127.255.254', 'carrier-grade NAT'],
    ['0.0.0.0', '0.0.0.0/8'],
    ['0.1.2.3', '0.0.0.0/8'],
    ['255.255.255.255', 'broadcast'],
    ['::', 'unspecified'],
    ['::1', 'loopback'],
    ['fe80::1', 'link-local'],
    ['fc00::1', 'unique local'],
    ['fd12:3456::1', 'unique local'],
    ['::ffff:127.0.0.1', 'IPv4-mapped form of loopback'],
    ['::ffff:7f00:1', 'IPv4-mapped form of loopback'],
    ['::ffff:a9fe:a9fe', 'IPv4-mapped form of link-local'],
    ['::ffff:10.0.0.1', 'IPv4-mapped form of a private'],
    ['::127.0.0.1', 'IPv4-compatible form of loopback'],
    ['64:ff9b::a9fe:a9fe', 'NAT64 form of link-local'],
    ['2002:c0a8:0101::1', '6to4 form of a private'],
    ['ff02::1', 'multicast'],
  ])('%s is refused (%s)', (ip, why) => {
    expect(refusedAddress(ip)).toContain(why);
  });

  it.each(['93.184.216.34', '172.32.0.1', '100.128.0.1', '11.0.0.1', '2606:2800:220:1::1', '::ffff:93.184.216.34', '2001:db8::1'])(
    '%s is allowed',
    (ip) => {
      expect(refusedAddress(ip)).toBeNull();
    },
  );

  it('anything but an IP address is refused', () => {
    expect(refusedAddress('localhost')).toBe('not an IP address');
  });
});

describe('callbackUrlProblem', () => {
  it('accepts a public https URL, every address public', async () => {
    expect(await callbackUrlProblem('https://cp.example.com/api', open)).toBeNull();
  });

  it.each([
    ['http://127.0.0.1:8080/cb', /loopback/],
    ['http://[::1]/cb', /loopback/],
    ['http://[::ffff:127.0.0.1]/cb', /IPv4-mapped/],
    ['http://169.254.169.254/latest', /link-local/],
    ['http://10.0.0.7/', /RFC 1918/],
    ['http://0x7f000001/', /loopback/], // the URL API reads the number as 127.0.0.1
    ['http://2130706433/', /loopback/],
    ['http://0/', /0\.0\.0\.0\/8/],
    ['https://cp.example.com/api#', /fragment/],
    ['https://cp.example.com/api#x', /fragment/],
    ['https://cp.example.com/api?', /query/],
    ['https://cp.example.com/api?next=', /query/],
    ['https://user:pw@cp.example.com/api', /credentials/],
    ['https://@cp.example.com/api', /credentials/],
    ['ftp://cp.example.com/', /http\(s\)/],
    ['not a url', /not a URL/],
    ['https://nowhere.invalid/', /does not resolve/],
  ])('refuses %s', async (url, why) => {
    expect(await callbackUrlProblem(url, open)).toMatch(why);
  });

  it('refuses a name when any of its addresses is refused (localhost, a split answer)', async () => {
    const policy = { origins: new Set<string>(), resolve: dns({ localhost: ['127.0.0.1', '::1'], split: ['93.184.216.34', '10.0.0.1'] }) };
    expect(await callbackUrlProblem('http://localhost:9/cb', policy)).toMatch(/resolves to loopback/);
    expect(await callbackUrlProblem('http://split/cb', policy)).toMatch(/resolves to a private/);
  });

  it('the real resolver: localhost resolves to loopback and is refused', async () => {
    expect(await callbackUrlProblem('http://localhost:9/cb', { origins: new Set() })).toMatch(/resolves to loopback/);
  });

  it('a listed origin may be loopback; with a list, an unlisted origin is refused even when public', async () => {
    const policy = { origins: callbackOrigins('http://127.0.0.1:8080', 'https://cp.example.com/agent/v1'), resolve: open.resolve };
    expect([...policy.origins]).toEqual(['http://127.0.0.1:8080', 'https://cp.example.com']);
    expect(await callbackUrlProblem('http://127.0.0.1:8080/cb', policy)).toBeNull();
    expect(await callbackUrlProblem('https://cp.example.com/hooks', policy)).toBeNull();
    expect(await callbackUrlProblem('http://127.0.0.1:8081/cb', policy)).toMatch(/not one of WARMSTART_CALLBACK_ORIGINS/);
    expect(await callbackUrlProblem('https://93.184.216.34/cb', policy)).toMatch(/not one of/);
    // Listed, still not with a query or fragment.
    expect(await callbackUrlProblem('http://127.0.0.1:8080/cb#', policy)).toMatch(/fragment/);
  });

  it('callbackOrigins refuses an entry that is not a bare origin', () => {
    for (const bad of ['cp.example.com', 'https://cp.example.com/path', 'ftp://cp.example.com', 'https://u:p@cp.example.com']) {
      expect(() => callbackOrigins(bad, null), bad).toThrow(/WARMSTART_CALLBACK_ORIGINS/);
    }
    expect([...callbackOrigins(' https://a.example , http://b.example:81/ ', null)]).toEqual(['https://a.example', 'http://b.example:81']);
  });

  it('assertCallbackUrl throws INVALID_CALLBACK_URL without echoing the URL', async () => {
    const err = await assertCallbackUrl('http://user:s3cret-pw@127.0.0.1/', open).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'INVALID_CALLBACK_URL', isInputError: true });
    expect((err as Error).message).not.toContain('s3cret-pw');
  });
});

describe('serveConfigFromEnv: callback origins', () => {
  it("takes WARMSTART_CALLBACK_ORIGINS and the control plane URL's origin; a bad entry stops start-up", () => {
    const c = serveConfigFromEnv({
      WARMSTART_CALLBACK_ORIGINS: 'https://hooks.example.com',
      WARMSTART_CONTROL_PLANE_URL: 'https://cp.example.com:8443/agent',
    });
    expect([...c.callbackOrigins]).toEqual(['https://hooks.example.com', 'https://cp.example.com:8443']);
    expect(serveConfigFromEnv({}).callbackOrigins.size).toBe(0);
    expect(() => serveConfigFromEnv({ WARMSTART_CALLBACK_ORIGINS: 'cp.example.com' })).toThrow(/WARMSTART_CALLBACK_ORIGINS/);
  });
});

describe('callbackTarget', () => {
  it('puts the suffix in the path, whatever the base ends with', () => {
    expect(callbackTarget('https://cp.example.com', 'w1', 'ready')).toBe('https://cp.example.com/workspaces/w1/ready');
    expect(callbackTarget('https://cp.example.com/api//', 'w1', 'ready')).toBe('https://cp.example.com/api/workspaces/w1/ready');
    // Refused at submission; still, were one to get here, it would not swallow the suffix.
    expect(callbackTarget('https://cp.example.com/api?x=1#frag', 'w1', 'provisioning-failed')).toBe(
      'https://cp.example.com/api/workspaces/w1/provisioning-failed',
    );
  });
});

describe('delivery re-check (FileOutbox checkTarget)', () => {
  const cleanup: Array<() => Promise<void>> = [];
  afterEach(async () => {
    for (const fn of cleanup.splice(0).reverse()) await fn();
  });

  it('a host that now resolves to a refused address is not sent to: dropped at once, no retry; a good one is delivered', async () => {
    const plane = await startControlPlane();
    cleanup.push(() => plane.close());
    const dir = join(await mkdtemp(join(tmpdir(), 'warmstart-recheck-')), 'callbacks');
    cleanup.push(() => rm(join(dir, '..'), { recursive: true, force: true }));
    const log = captureLogger();
    // DNS changed since submission: the name now points at the metadata address.
    const table: Record<string, string[]> = { 'rebound.example': ['169.254.169.254'] };
    const policy: CallbackPolicy = { origins: new Set(), resolve: dns(table) };
    const checked: string[] = [];
    const outbox = new FileOutbox({
      dir,
      logger: log,
      baseDelayMs: 20,
      checkTarget: async (url) => {
        checked.push(url);
        // The plane on 127.0.0.1 stands for a listed control plane.
        return url.startsWith(plane.url) ? null : callbackUrlProblem(url, policy);
      },
    });
    cleanup.push(() => outbox.stop());
    await outbox.start();
    const cb = { token: 'cb-token-recheck-123', body: { ok: true }, kind: 'ready' as const };
    await outbox.enqueue({ ...cb, url: `http://rebound.example:${plane.port}/workspaces/w1/ready`, workspaceId: 'w1' });
    await outbox.enqueue({ ...cb, url: `${plane.url}/workspaces/w2/ready`, workspaceId: 'w2' });
    expect(await outbox.flush(5_000)).toBe(true);
    await sleep(200); // long enough for a wrong retry (base delay 20 ms)
    expect(plane.requests.map((r) => r.path)).toEqual(['/workspaces/w2/ready']);
    expect(checked.filter((u) => u.includes('rebound.example'))).toHaveLength(1);
    expect(outbox.pending()).toBe(0);
    expect((await readdir(dir)).filter((n) => n.endsWith('.json'))).toEqual([]);
    expect(log.text()).toContain('callback URL refused at delivery; dropping it');
    expect(log.text()).not.toContain('cb-token-recheck-123');
  });
});
