import fc from 'fast-check';
import { nastyString } from './strings.js';

/**
 * One generated request to `warmstart serve`, as data: fast-check makes it
 * from a seed, so the same seed gives the same sequence. Names that should
 * point at this run's own objects are `ours` and get the run's prefix when
 * the request is built (see build.ts); everything else goes out as generated.
 */
export interface Param {
  value: string;
  /** prefix with the run id when built: a name of this run's own objects */
  ours: boolean;
  how: 'plain' | 'component' | 'double';
}

export type AuthForm =
  | 'valid'
  | 'lowercase-scheme'
  | 'extra-spaces'
  | 'none'
  | 'basic'
  | 'scheme-only'
  | 'empty-token'
  | 'token-suffix'
  | 'token-cut'
  | 'other-scheme'
  | 'list'
  | 'jwt-garbage'
  | 'huge'
  // raw only: bytes fetch will not put in a header, or a header twice
  | 'unicode'
  | 'duplicate-wrong-first'
  | 'duplicate-valid-first';

/** Whether the agent must take the credentials: by the contract (`Authorization: Bearer <token>`, scheme case-insensitive). */
export function authVerdict(form: AuthForm): 'valid' | 'invalid' | 'either' {
  if (form === 'valid' || form === 'lowercase-scheme' || form === 'extra-spaces') return 'valid';
  // Node keeps the first of two Authorization headers; HTTP leaves it open.
  if (form === 'duplicate-valid-first') return 'either';
  return 'invalid';
}

export type Body =
  | { kind: 'none' }
  | { kind: 'json'; value: unknown }
  | { kind: 'text'; text: string }
  | { kind: 'bytes'; hex: string }
  /** a JSON object whose one string makes the body `bytes` long: past a body limit */
  | { kind: 'big'; bytes: number }
  /** `[[[[...]]]]`, `depth` deep */
  | { kind: 'deep'; depth: number };

export type RawMutation =
  | 'none'
  | 'cl-short'
  | 'cl-long'
  | 'cl-negative'
  | 'cl-nonnumeric'
  | 'cl-duplicate'
  | 'cl-and-te'
  | 'te-bogus'
  | 'chunked-bad'
  | 'huge-header'
  | 'many-headers'
  | 'header-bytes'
  | 'header-name-bytes'
  | 'no-host'
  | 'http10'
  | 'bad-version'
  | 'lf-only'
  | 'obs-fold'
  | 'space-before-colon'
  | 'bad-request-line'
  | 'absolute-form'
  | 'asterisk-form'
  | 'expect'
  | 'expect-other'
  | 'pipelined';

export interface HttpCase {
  family: string;
  method: string;
  /** a route template: `{x}` is replaced by params.x */
  route: string;
  params: Record<string, Param>;
  /** [key, value] pairs, each value a Param; or a raw query string */
  query: Array<[string, Param]> | { raw: string } | null;
  auth: AuthForm;
  /** null: no Content-Type; two values: the header twice (raw only) */
  contentType: string | null | [string, string];
  headers: Array<[string, string]>;
  body: Body;
  transport: 'fetch' | 'raw';
  mutation: RawMutation;
}

// ---------------------------------------------------------------- pieces

const how = fc.constantFrom<Param['how']>('plain', 'component', 'component', 'double');
const oursTail = fc.stringMatching(/^[a-z0-9][a-z0-9-]{0,6}$/);
const validIdTail = fc.constantFrom('ws-0', 'ws-1', 'ws-2', 'ws-3', 'ws-4', 'ws-5');

/** A name the route would take, one of this run's (existing or not), or anything at all. */
const param = fc.oneof(
  { weight: 3, arbitrary: fc.record({ value: validIdTail, ours: fc.constant(true), how }) },
  { weight: 1, arbitrary: fc.record({ value: oursTail, ours: fc.constant(true), how }) },
  { weight: 6, arbitrary: fc.record({ value: nastyString, ours: fc.constant(false), how }) },
);
const plainParam = (a: fc.Arbitrary<string>, ours = false): fc.Arbitrary<Param> =>
  fc.record({ value: a, ours: fc.constant(ours), how: fc.constant<Param['how']>('component') });

const backend = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom('docker', 'incus', 'lima', 'cloud-hypervisor') },
  { weight: 1, arbitrary: fc.constantFrom('Docker', 'qemu', '', 'docker ', 'lima\u0000', '__proto__') },
  { weight: 1, arbitrary: nastyString },
);

/** Any JSON value, including the wrong type for every field. */
const anyJson = fc.oneof(
  { weight: 2, arbitrary: fc.jsonValue({ maxDepth: 3 }) },
  { weight: 1, arbitrary: fc.constantFrom(null, true, 0, -1, 1.5, 1e308, [], {}, [null], { a: 1 }, '') },
);

/** A field: absent, the right kind of value, a nasty string, or a wrong type. */
function field<T>(good: fc.Arbitrary<T>): fc.Arbitrary<T | string | unknown> {
  return fc.oneof({ weight: 5, arbitrary: good }, { weight: 2, arbitrary: nastyString }, { weight: 1, arbitrary: anyJson });
}

/** An object with some fields left out, and sometimes one it does not know. */
function objectOf(fields: Record<string, fc.Arbitrary<unknown>>, required: string[]): fc.Arbitrary<Record<string, unknown>> {
  const keys = Object.keys(fields);
  return fc
    .tuple(
      fc.record(fields),
      fc.subarray(keys),
      // now and then a key the schema does not know
      fc.oneof(
        { weight: 5, arbitrary: fc.constant(null) },
        { weight: 1, arbitrary: fc.tuple(fc.constantFrom('extra', '__proto__', 'constructor', 'ID', 'id ', '', '🦄'), anyJson) },
      ),
      fc.boolean(),
    )
    .map(([all, drop, extra, keepRequired]) => {
      const out: Record<string, unknown> = {};
      for (const k of keys) {
        const dropIt = drop.includes(k) && !(keepRequired && required.includes(k));
        if (!dropIt) out[k] = all[k];
      }
      if (extra) Object.defineProperty(out, extra[0], { value: extra[1], enumerable: true, configurable: true, writable: true });
      return out;
    });
}

const repository = fc.oneof(
  {
    weight: 3,
    arbitrary: fc.constantFrom(
      'octo/hello',
      'acme/Example.git',
      'https://fuzz.invalid/acme/app.git',
      'https://fuzz.invalid/acme/app',
      'ssh://git@fuzz.invalid/acme/app.git',
      'git@fuzz.invalid:acme/app.git',
      'https://user:pass@fuzz.invalid/a/b',
      'http://fuzz.invalid/a/b',
      'ftp://fuzz.invalid/a/b',
      'git://fuzz.invalid/a/b',
      'ext::sh -c id',
      'file:///etc',
      '/etc',
      '../../..',
      '.',
      'https://fuzz.invalid/../../etc/passwd',
      'https://fuzz.invalid/%2e%2e/%2e%2e',
      'octo/../..',
      '-uhelp/x',
    ),
  },
  { weight: 2, arbitrary: nastyString },
);

const configName = fc.oneof(fc.constantFrom('dev', 'python', 'a.b', 'x_y', '日本'), nastyString);
const registry = fc.oneof(
  fc.constantFrom('127.0.0.1:9', '127.0.0.1:9/ns', 'localhost:9/a/b', 'ghcr.io', 'registry.fuzz.invalid:5000/x', 'a b', 'http://x'),
  nastyString,
);
const imageRef = fc.oneof(fc.constantFrom('127.0.0.1:9/a/b:t', 'a/b@sha256:00', 'UPPER/case:tag', ':tag', 'a//b'), nastyString);
const url = fc.oneof(
  fc.constantFrom('https://cp.fuzz.invalid/api', 'http://127.0.0.1:9/cb', 'javascript:alert(1)', 'ftp://x/y', 'http://[::1', 'https://a/%2e%2e/'),
  nastyString,
);
const secret = fc.oneof(fc.constantFrom('fuzz-secret-value', 'x'), nastyString);

const workspaceBody = objectOf(
  {
    id: field(validIdTail.map((t) => ({ ours: t }))),
    repository: field(repository),
    configName: field(configName),
    lightweight: field(fc.boolean()),
    gitToken: field(secret),
    cache: field(objectOf({ registry: field(registry), ref: field(imageRef), username: field(secret), password: field(secret) }, ['registry'])),
    callback: field(objectOf({ url: field(url), token: field(secret) }, ['url', 'token'])),
  },
  ['id', 'repository'],
);

/**
 * Bodies that pass the schema, so the handlers run: a job the agent takes
 * (its clone then fails offline), a machine up with a base no backend has,
 * snapshots and golden images of machines and workspaces that do not exist.
 */
const oursId = validIdTail.map((t) => ({ ours: t }));
const validWorkspaceBody = fc.record(
  {
    id: oursId,
    repository: fc.constantFrom(
      'octo/hello',
      'https://fuzz.invalid/acme/app.git',
      'ssh://git@fuzz.invalid/acme/app.git',
      'git@fuzz.invalid:acme/app.git',
      'https://fuzz.invalid/a/%2e%2e',
      '/etc',
      'file:///etc',
    ),
    configName: fc.constantFrom('dev', 'a.b', '日本', 'python', '..'),
    lightweight: fc.boolean(),
    gitToken: fc.constant('fuzz-git-token'),
    cache: fc.record(
      { registry: fc.constantFrom('127.0.0.1:9', '127.0.0.1:9/ns'), ref: fc.constantFrom('127.0.0.1:9/a/b:t', 'UPPER/x') },
      { requiredKeys: ['registry'] },
    ),
    callback: fc.record({ url: fc.constant('http://127.0.0.1:9/cb'), token: fc.constant('fuzz-callback-token') }),
  },
  { requiredKeys: ['id', 'repository'] },
);

/** A prebuild's body: the workspace body without id, lightweight, gitToken or callback. */
const prebuildBody = objectOf(
  {
    repository: field(repository),
    configName: field(configName),
    cache: field(objectOf({ registry: field(registry), ref: field(imageRef), username: field(secret), password: field(secret) }, ['registry'])),
  },
  ['repository'],
);

/** Prebuilds the agent takes: each ends at its registry probe or clone, offline. */
const validPrebuildBody = fc.record(
  {
    repository: fc.constantFrom('octo/hello', 'https://fuzz.invalid/acme/app.git', 'git@fuzz.invalid:acme/app.git', '/etc'),
    configName: fc.constantFrom('dev', 'python', '..'),
    cache: fc.record(
      {
        registry: fc.constantFrom('127.0.0.1:9', '127.0.0.1:9/ns'),
        username: fc.constant('fuzz-user'),
        password: fc.constant('fuzz-registry-password'),
      },
      { requiredKeys: ['registry'] },
    ),
  },
  { requiredKeys: ['repository'] },
);

const machineName = field(
  fc.oneof(
    oursTail.map((t) => ({ ours: `m${t}` })),
    fc.constantFrom('a', 'cache', 'm', 'A'),
  ),
);
const machineBody = objectOf(
  {
    backend: field(backend),
    name: machineName,
    base: field(fc.constantFrom('busybox', 'warmstart-testbed/base:busybox', 'debian:12', 'ubuntu/22.04')),
    provision: field(fc.oneof(fc.constantFrom('echo hi', 'rm -rf /', ''), fc.constant('x'.repeat(600_000)))),
    files: field(
      fc.array(
        objectOf(
          {
            path: field(fc.constantFrom('/etc/x', '/', '//', '/../../etc/passwd', 'relative')),
            content: field(fc.constantFrom('aGVsbG8=', '', '!!!', '=====')),
          },
          ['path', 'content'],
        ),
        { maxLength: 3 },
      ),
    ),
  },
  ['backend', 'name', 'base'],
);

const snapshotBody = objectOf({ backend: field(backend), machine: machineName, name: machineName }, ['backend', 'machine', 'name']);
/** `POST /v1/machines/{name}/snapshots`: the machine is in the path, the backend in the query. */
const createSnapshotBody = objectOf({ name: machineName }, ['name']);

const imageBody = objectOf(
  {
    workspaceId: field(validIdTail.map((t) => ({ ours: t }))),
    name: field(
      fc.oneof(
        oursTail.map((t) => ({ ours: `g${t}` })),
        fc.constantFrom('Golden', 'a', '..', 'x'.repeat(65)),
      ),
    ),
    tag: field(fc.constantFrom('latest', 'v1.0', '-x', '..', 'A'.repeat(64))),
    capabilities: field(fc.array(fc.oneof(fc.constantFrom('gpu', 'a,b', ''), nastyString), { maxLength: 12 })),
    owner: field(fc.constantFrom('alice', 'root', '')),
    push: field(fc.boolean()),
  },
  ['workspaceId', 'name'],
);

const malformedJson = fc.constantFrom(
  '',
  ' ',
  '{',
  '}',
  '{"id":',
  '{"id":"ws-1",}',
  "{'id':'ws-1'}",
  '{"id":"ws-1"}garbage',
  '{"id":"ws-1"}{"id":"ws-2"}',
  '\uFEFF{}',
  'nul',
  'NaN',
  '[1,2',
  '"unterminated',
  '{"a":"\\uD800"}',
  '{"a":"\\u0000"}',
  '{"__proto__":{"polluted":1}}',
  '{"constructor":{"prototype":{"polluted":1}}}',
  '{"id":"ws-1","id":"ws-2"}',
  '1e99999',
  '-0',
  '{"a":1e999}',
);

const validMachineBody = fc.record({
  backend: fc.constantFrom('docker', 'lima', 'incus', 'cloud-hypervisor'),
  name: oursTail.map((t) => ({ ours: `m${t}` })),
  base: fc.constant('absent-base'),
  provision: fc.constant('echo provisioned'),
});
const validSnapshotBody = fc.record({
  backend: fc.constantFrom('docker', 'lima', 'incus', 'cloud-hypervisor'),
  machine: oursTail.map((t) => ({ ours: `m${t}` })),
  name: fc.constantFrom('snap', 's1'),
});
const validCreateSnapshotBody = fc.record({ name: fc.constantFrom('snap', 's1') });
const validImageBody = fc.record(
  { workspaceId: oursId, name: oursTail.map((t) => ({ ours: `g${t}` })), tag: fc.constantFrom('latest', 'v1'), push: fc.boolean() },
  { requiredKeys: ['workspaceId', 'name'] },
);

const bodyFor = (route: string): fc.Arbitrary<Body> => {
  const messy =
    route === '/v1/workspaces'
      ? workspaceBody
      : route === '/v1/prebuilds'
        ? prebuildBody
        : route === '/v1/machines'
          ? machineBody
          : route.startsWith('/v1/snapshots')
            ? snapshotBody
            : route === '/v1/machines/{name}/snapshots'
              ? createSnapshotBody
              : route === '/v1/images'
                ? imageBody
                : fc.dictionary(fc.string({ maxLength: 6 }), anyJson, { maxKeys: 3 });
  const valid =
    route === '/v1/workspaces'
      ? validWorkspaceBody
      : route === '/v1/prebuilds'
        ? validPrebuildBody
        : route === '/v1/machines'
          ? validMachineBody
          : route.startsWith('/v1/snapshots')
            ? validSnapshotBody
            : route === '/v1/machines/{name}/snapshots'
              ? validCreateSnapshotBody
              : route === '/v1/images'
                ? validImageBody
                : messy;
  return fc.oneof(
    { weight: 4, arbitrary: valid.map((value): Body => ({ kind: 'json', value })) },
    { weight: 6, arbitrary: messy.map((value): Body => ({ kind: 'json', value })) },
    { weight: 2, arbitrary: anyJson.map((value): Body => ({ kind: 'json', value })) },
    { weight: 3, arbitrary: malformedJson.map((text): Body => ({ kind: 'text', text })) },
    {
      weight: 1,
      arbitrary: fc.uint8Array({ minLength: 1, maxLength: 48 }).map((b): Body => ({ kind: 'bytes', hex: Buffer.from(b).toString('hex') })),
    },
    { weight: 1, arbitrary: fc.constantFrom(1, 500, 5000, 20_000).map((depth): Body => ({ kind: 'deep', depth })) },
  );
};

const contentType = fc.oneof(
  { weight: 10, arbitrary: fc.constant('application/json') },
  {
    weight: 4,
    arbitrary: fc.constantFrom(
      'application/json; charset=utf-8',
      'APPLICATION/JSON',
      'application/json;charset=latin1',
      'application/json ; charset=utf-8',
      'application/jsonx',
      'application/json, text/plain',
      'application/merge-patch+json',
      'text/plain',
      'text/json',
      'application/x-www-form-urlencoded',
      'multipart/form-data; boundary=x',
      'application/octet-stream',
      '*/*',
      '',
      ';',
      'application/json; charset=utf-8; charset=utf-16',
    ),
  },
  { weight: 1, arbitrary: fc.constant(null) },
);

const authForm = fc.oneof(
  { weight: 14, arbitrary: fc.constant<AuthForm>('valid') },
  {
    weight: 6,
    arbitrary: fc.constantFrom<AuthForm>(
      'lowercase-scheme',
      'extra-spaces',
      'none',
      'basic',
      'scheme-only',
      'empty-token',
      'token-suffix',
      'token-cut',
      'other-scheme',
      'list',
      'jwt-garbage',
      'huge',
    ),
  },
);
const rawAuthForm = fc.oneof(
  { weight: 3, arbitrary: authForm },
  { weight: 1, arbitrary: fc.constantFrom<AuthForm>('unicode', 'duplicate-wrong-first', 'duplicate-valid-first') },
);

const oddHeaders = fc.array(
  fc.oneof(
    fc.tuple(
      fc.constantFrom('accept', 'x-forwarded-for', 'x-request-id', 'origin', 'cookie', 'user-agent', 'range', 'if-none-match'),
      fc.constantFrom('*/*', '127.0.0.1', '..', 'bytes=0-0', '"x"', 'a'.repeat(300)),
    ),
    fc.constant<[string, string]>(['accept-encoding', 'gzip, br, zstd, *']),
    fc.constant<[string, string]>(['accept-version', '9.9.9']),
    fc.constant<[string, string]>(['content-encoding', 'gzip']),
    fc.constant<[string, string]>(['x-http-method-override', 'DELETE']),
    // POST /v1/workspaces reads it (a repeat by key); any other route ignores it
    fc.tuple(
      fc.constant('idempotency-key'),
      fc.constantFrom('fuzz-key-1', '"fuzz-key-1"', '', '""', '"open', 'a b', 'a,b', 'x'.repeat(300), 'schl\u00fcssel'),
    ),
  ),
  { maxLength: 2 },
);

// ---------------------------------------------------------------- routes

interface RouteSpec {
  route: string;
  methods: string[];
  body: boolean;
  query?: fc.Arbitrary<Array<[string, Param]>>;
}

const anyParam = (a: fc.Arbitrary<string>): fc.Arbitrary<Param> =>
  fc.oneof({ weight: 4, arbitrary: plainParam(a) }, { weight: 1, arbitrary: fc.record({ value: nastyString, ours: fc.constant(false), how }) });
const oursMachine = fc.record({ value: oursTail.map((t) => `m${t}`), ours: fc.constant(true), how: fc.constant<Param['how']>('component') });
const machineParam = fc.oneof(oursMachine, anyParam(fc.constantFrom('a', 'cache', 'A')));

const backendQuery = fc.array(fc.tuple(fc.constantFrom('backend'), anyParam(backend)), { minLength: 0, maxLength: 2 });
const snapshotQuery = fc
  .tuple(backendQuery, fc.option(machineParam, { freq: 4 }), fc.option(machineParam, { freq: 4 }))
  .map(([b, m, n]) => [...b, ...(m ? [['machine', m] as [string, Param]] : []), ...(n ? [['name', n] as [string, Param]] : [])]);
const purgeQuery = fc.array(fc.tuple(fc.constantFrom('purge'), anyParam(fc.constantFrom('true', 'false', 'TRUE', '1', ''))), { maxLength: 2 });
/** `after` of the events route: a seq to resume after; anything but one whole number is 400 INVALID_ARGUMENT. */
const afterQuery = fc.array(
  fc.tuple(fc.constantFrom('after'), anyParam(fc.constantFrom('0', '1', '3', '-1', '1.5', '1e3', '', 'x', '99999999999999999'))),
  { maxLength: 2 },
);
const tagQuery = fc.array(fc.tuple(fc.constantFrom('tag'), anyParam(fc.constantFrom('latest', '', '..', 'x'.repeat(200)))), { maxLength: 2 });

const ROUTES: RouteSpec[] = [
  { route: '/health', methods: ['GET'], body: false },
  { route: '/readyz', methods: ['GET'], body: false },
  { route: '/metrics', methods: ['GET'], body: false },
  { route: '/v1/openapi.json', methods: ['GET'], body: false },
  { route: '/v1/workspaces', methods: ['GET', 'POST', 'POST', 'POST', 'POST'], body: true },
  { route: '/v1/workspaces/{id}', methods: ['GET', 'GET', 'DELETE'], body: false, query: purgeQuery },
  { route: '/v1/workspaces/{id}/events', methods: ['GET'], body: false, query: afterQuery },
  { route: '/v1/prebuilds', methods: ['POST', 'POST'], body: true },
  { route: '/v1/prebuilds/{id}', methods: ['GET'], body: false },
  { route: '/v1/machines', methods: ['GET', 'POST', 'POST'], body: true, query: backendQuery },
  { route: '/v1/machines/cache', methods: ['GET'], body: false, query: backendQuery },
  { route: '/v1/machines/{name}', methods: ['DELETE'], body: false, query: backendQuery },
  { route: '/v1/machines/{name}/snapshots', methods: ['GET', 'POST', 'POST'], body: true, query: backendQuery },
  { route: '/v1/machines/{name}/snapshots/{snapshot}', methods: ['GET', 'DELETE'], body: false, query: backendQuery },
  // A restore takes no body (an empty object at most).
  { route: '/v1/machines/{name}/snapshots/{snapshot}/restore', methods: ['POST'], body: false, query: backendQuery },
  { route: '/v1/jobs', methods: ['GET'], body: false },
  { route: '/v1/jobs/{jobId}', methods: ['GET'], body: false },
  { route: '/v1/jobs/{jobId}/events', methods: ['GET'], body: false, query: afterQuery },
  // Deprecated, still served.
  { route: '/v1/snapshots', methods: ['GET', 'POST', 'DELETE'], body: true, query: snapshotQuery },
  { route: '/v1/snapshots/restore', methods: ['POST'], body: true },
  { route: '/v1/images', methods: ['GET', 'POST', 'POST'], body: true },
  { route: '/v1/images/{name}', methods: ['DELETE'], body: false, query: tagQuery },
];

const UNKNOWN_ROUTES = [
  '/',
  '/v1',
  '/v1/',
  '/v2/workspaces',
  '/v1/workspaces/',
  '//v1/workspaces',
  '/V1/WORKSPACES',
  '/health/',
  '/.env',
  '/v1/workspaces/{id}/events/{name}',
  '/v1/workspaces/{id}/{name}',
  '/v1/nope/{id}',
  '/v1/../health',
  '/%2e%2e/%2e%2e/etc/passwd',
  '/v1/workspaces%2F{id}',
  '/v1/images/{name}/{id}',
  '/v1/jobs',
  '/v1/jobs/{id}/events/{name}',
  '/v1/machines/{name}/snapshots/{name}/{id}',
  '/metrics.json',
  '/v1/openapi.yaml',
];

const allMethods = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom('GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'HEAD') },
  { weight: 1, arbitrary: fc.constantFrom('PROPFIND', 'MKCOL', 'LOCK', 'PURGE', 'SEARCH', 'QUERY', 'FOO', 'get', 'Post', 'M-SEARCH') },
);

/** Prebuild and job ids are UUIDs the agent makes: well-formed ones reach the handler (an unknown one is its 404), the rest the schema. */
const prebuildParam = fc.oneof({ weight: 1, arbitrary: plainParam(fc.uuid({ version: 4 })) }, { weight: 1, arbitrary: param });

const paramsFor = (route: string): fc.Arbitrary<Record<string, Param>> => {
  const names = [...route.matchAll(/\{(\w+)\}/g)].map((m) => m[1]!);
  const forName = (n: string): fc.Arbitrary<Param> =>
    n === 'name' || n === 'snapshot' ? fc.oneof(machineParam, param) : n === 'jobId' || route.startsWith('/v1/prebuilds/') ? prebuildParam : param;
  return fc.record(Object.fromEntries(names.map((n) => [n, forName(n)])));
};

/** A request to one of the documented routes, method and body as the route takes them (mostly). */
const routeCase: fc.Arbitrary<HttpCase> = fc.constantFrom(...ROUTES).chain((spec) =>
  fc
    .record({
      method: fc.oneof({ weight: 9, arbitrary: fc.constantFrom(...spec.methods) }, { weight: 1, arbitrary: allMethods }),
      params: paramsFor(spec.route),
      query: spec.query ? fc.option(spec.query, { freq: 8, nil: null }) : fc.option(fc.constant<Array<[string, Param]>>([]), { nil: null }),
      auth: authForm,
      contentType,
      headers: oddHeaders,
      body: bodyFor(spec.route),
    })
    .map(({ method, params, query, auth, contentType: ct, headers, body }): HttpCase => {
      const sendsBody = spec.body && (method === 'POST' || method === 'PUT' || method === 'PATCH');
      return {
        family: `route ${spec.route}`,
        method,
        route: spec.route,
        params,
        query,
        auth,
        contentType: sendsBody ? ct : null,
        headers,
        body: sendsBody ? body : { kind: 'none' },
        transport: 'fetch',
        mutation: 'none',
      };
    }),
);

/** Unknown routes, odd methods and query strings. */
const strayCase: fc.Arbitrary<HttpCase> = fc
  .record({
    route: fc.oneof(fc.constantFrom(...UNKNOWN_ROUTES), fc.constantFrom(...ROUTES.map((r) => r.route))),
    method: allMethods,
    query: fc.oneof(
      fc.constant(null),
      fc.constantFrom(
        { raw: '' },
        { raw: '%zz' },
        { raw: 'a=%' },
        { raw: '__proto__[x]=1' },
        { raw: 'constructor[prototype][x]=1' },
        { raw: 'a[b][c]=d' },
        { raw: 'purge=true;purge=false' },
        { raw: 'backend=docker&backend=lima' },
        { raw: `x=${'a'.repeat(8000)}` },
        { raw: '&&&==&' },
        { raw: 'backend=%00' },
        { raw: 'backend=%F0%9F%A6%84' },
        { raw: '%ED%A0%80=1' },
      ),
    ),
    auth: authForm,
  })
  .chain((c) =>
    paramsFor(c.route).map((params): HttpCase => ({
      family: 'stray',
      method: c.method,
      route: c.route,
      params,
      query: c.query,
      auth: c.auth,
      contentType: null,
      headers: [],
      body: { kind: 'none' },
      transport: 'fetch',
      mutation: 'none',
    })),
  );

/** Bodies over the limits: 64 KiB for the API, 4 MiB for machines. */
const oversizedCase: fc.Arbitrary<HttpCase> = fc
  .record({
    route: fc.constantFrom('/v1/workspaces', '/v1/workspaces', '/v1/images', '/v1/snapshots', '/v1/machines', '/health', '/v1/workspaces/{id}'),
    bytes: fc.constantFrom(64 * 1024 + 1, 100 * 1024, 1024 * 1024),
    auth: fc.constantFrom<AuthForm>('valid', 'valid', 'none'),
    transport: fc.constantFrom<'fetch' | 'raw'>('fetch', 'raw'),
  })
  .chain((c) =>
    paramsFor(c.route).map((params): HttpCase => ({
      family: 'oversized body',
      method: 'POST',
      route: c.route,
      params,
      query: null,
      auth: c.auth,
      contentType: 'application/json',
      headers: [],
      body: { kind: 'big', bytes: c.route === '/v1/machines' ? 4 * 1024 * 1024 + c.bytes : c.bytes },
      transport: c.transport,
      mutation: 'none',
    })),
  );

/** What fetch refuses to send: broken framing, oversized or invalid headers, odd request lines. */
const rawCase: fc.Arbitrary<HttpCase> = fc
  .record({
    base: routeCase,
    mutation: fc.constantFrom<RawMutation>(
      'none',
      'cl-short',
      'cl-long',
      'cl-negative',
      'cl-nonnumeric',
      'cl-duplicate',
      'cl-and-te',
      'te-bogus',
      'chunked-bad',
      'huge-header',
      'many-headers',
      'header-bytes',
      'header-name-bytes',
      'no-host',
      'http10',
      'bad-version',
      'lf-only',
      'obs-fold',
      'space-before-colon',
      'bad-request-line',
      'absolute-form',
      'asterisk-form',
      'expect',
      'expect-other',
      'pipelined',
    ),
    auth: rawAuthForm,
    contentType: fc.oneof(
      { weight: 4, arbitrary: contentType },
      {
        weight: 1,
        arbitrary: fc.constantFrom<[string, string]>(
          ['application/json', 'text/plain'],
          ['text/plain', 'application/json'],
          ['application/json', 'application/json'],
        ),
      },
    ),
  })
  .map(({ base, mutation, auth, contentType: ct }): HttpCase => ({
    ...base,
    family: `raw ${mutation}`,
    auth,
    contentType: base.body.kind === 'none' ? null : ct,
    transport: 'raw',
    mutation,
  }));

/** Requests that pass validation, sent as a well-behaved client would: the handlers behind it run. */
interface ValidSpec {
  method: string;
  route: string;
  params?: fc.Arbitrary<Record<string, Param>>;
  query?: fc.Arbitrary<Array<[string, Param]>>;
  body?: fc.Arbitrary<unknown>;
}
const validBackend = fc.constantFrom('docker', 'lima', 'incus', 'cloud-hypervisor');
const validBackendQuery = validBackend.map((b): Array<[string, Param]> => [['backend', { value: b, ours: false, how: 'plain' }]]);
const validMachineParams = fc.record({ name: oursMachine, snapshot: fc.constantFrom<Param>({ value: 'snap', ours: false, how: 'plain' }) });
const VALID: ValidSpec[] = [
  { method: 'POST', route: '/v1/workspaces', body: validWorkspaceBody },
  { method: 'POST', route: '/v1/workspaces', body: validWorkspaceBody },
  { method: 'POST', route: '/v1/workspaces', body: validWorkspaceBody },
  { method: 'POST', route: '/v1/machines', body: validMachineBody },
  { method: 'POST', route: '/v1/images', body: validImageBody },
  { method: 'POST', route: '/v1/machines/{name}/snapshots', params: validMachineParams, query: validBackendQuery, body: validCreateSnapshotBody },
  { method: 'GET', route: '/v1/machines/{name}/snapshots/{snapshot}', params: validMachineParams, query: validBackendQuery },
  { method: 'DELETE', route: '/v1/machines/{name}/snapshots/{snapshot}', params: validMachineParams, query: validBackendQuery },
  // Deprecated, still served.
  { method: 'POST', route: '/v1/snapshots', body: validSnapshotBody },
  { method: 'POST', route: '/v1/snapshots/restore', body: validSnapshotBody },
  {
    method: 'DELETE',
    route: '/v1/snapshots',
    query: fc
      .tuple(validBackendQuery, oursMachine)
      .map(([b, m]): Array<[string, Param]> => [...b, ['machine', m], ['name', { value: 'snap', ours: false, how: 'plain' }]]),
  },
  {
    method: 'GET',
    route: '/v1/snapshots',
    query: fc.tuple(validBackendQuery, oursMachine).map(([b, m]): Array<[string, Param]> => [...b, ['machine', m]]),
  },
  { method: 'GET', route: '/v1/machines/{name}/snapshots', params: validMachineParams, query: validBackendQuery },
];
const validCase: fc.Arbitrary<HttpCase> = fc.constantFrom(...VALID).chain((spec) =>
  fc
    .record({
      params: spec.params ?? fc.constant({}),
      query: spec.query ?? fc.constant(null),
      body: spec.body ?? fc.constant(undefined),
    })
    .map(({ params, query, body }): HttpCase => ({
      family: `valid ${spec.method} ${spec.route}`,
      method: spec.method,
      route: spec.route,
      params,
      query,
      auth: 'valid',
      contentType: body === undefined ? null : 'application/json',
      headers: [],
      body: body === undefined ? { kind: 'none' } : { kind: 'json', value: body },
      transport: 'fetch',
      mutation: 'none',
    })),
);

/** The whole mix. */
export const httpCase: fc.Arbitrary<HttpCase> = fc.oneof(
  { weight: 1, arbitrary: validCase },
  { weight: 12, arbitrary: routeCase },
  { weight: 3, arbitrary: strayCase },
  { weight: 1, arbitrary: oversizedCase },
  { weight: 5, arbitrary: rawCase },
);

/**
 * The heaviest requests the generator makes, one of each: every oversized
 * body size on every route it is sent to, both transports, the biggest JSON
 * that is read (a 600 KB provision script) and the deepest. The fuzzer sends
 * them in its warm-up, so the memory baseline already includes what big
 * uploads leave in the allocator; growth past it is what a leak looks like.
 */
export function heavyCases(): HttpCase[] {
  const base = { query: null, headers: [], mutation: 'none' as const, auth: 'valid' as const, contentType: 'application/json' };
  const ws: Param = { value: 'ws-0', ours: true, how: 'component' };
  const out: HttpCase[] = [];
  for (const route of ['/v1/workspaces', '/v1/images', '/v1/snapshots', '/v1/machines', '/health', '/v1/workspaces/{id}']) {
    for (const bytes of [64 * 1024 + 1, 100 * 1024, 1024 * 1024]) {
      for (const transport of ['fetch', 'raw'] as const) {
        out.push({
          ...base,
          family: 'warm-up',
          method: 'POST',
          route,
          params: route.includes('{id}') ? { id: ws } : {},
          body: { kind: 'big', bytes: route === '/v1/machines' ? 4 * 1024 * 1024 + bytes : bytes },
          transport,
        });
      }
    }
  }
  const provision = { backend: 'docker', name: { ours: 'mwarm' }, base: 'absent-base', provision: 'x'.repeat(600_000) };
  for (const value of [provision, { ...provision, provision: 'x'.repeat(400_000) }]) {
    out.push({ ...base, family: 'warm-up', method: 'POST', route: '/v1/machines', params: {}, body: { kind: 'json', value }, transport: 'fetch' });
  }
  for (const depth of [5000, 20_000]) {
    out.push({ ...base, family: 'warm-up', method: 'POST', route: '/v1/workspaces', params: {}, body: { kind: 'deep', depth }, transport: 'fetch' });
  }
  return out;
}
