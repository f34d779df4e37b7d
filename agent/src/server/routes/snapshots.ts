import type { FastifyInstance, FastifyReply } from 'fastify';
import { z } from 'zod';
import { CreateSnapshotBody, SnapshotBody } from '../../../../shared/src/api.js';
import { BackendQuery, MachineParams, MachineSnapshotParams, SnapshotDeleteQuery, SnapshotListQuery } from '../../../../shared/src/openapi.js';
import type { BackendName, SnapshotBackend, StateSnapshot } from '../../backends/backend.js';
import { WarmstartError } from '../../errors.js';
import { requireNodeScope, type MachineRouteDeps } from './machines.js';
import { requireJson } from './workspace-routes.js';

type Deps = Pick<MachineRouteDeps, 'backends'>;
type Restored = { machine: string; name: string; restored: true };
type Deleted = { machine: string; name: string; deleted: true };

/** A restore takes no body; an empty object is accepted, anything in it refused (400). */
const RestoreBody = z.object({}).strict().nullish();

/**
 * Snapshots as resources under their machine, each operation the same on
 * every backend: an unknown machine is 404 MACHINE_NOT_FOUND, an unknown
 * snapshot 404 SNAPSHOT_NOT_FOUND, a state the backend refuses 409
 * BACKEND_PRECONDITION, a backend without snapshots 501 BACKEND_UNSUPPORTED.
 */
const snapshots = {
  /**
   * Refuses a taken name with 409 before asking the backend: LXD accepts a
   * second snapshot of one name as an operation that only fails later (an
   * error that would be a 500 here); the others refuse it themselves.
   */
  async create(backend: SnapshotBackend, machine: string, name: string): Promise<StateSnapshot> {
    if ((await backend.listSnapshots(machine)).some((s) => s.name === name)) {
      throw new WarmstartError('BACKEND_PRECONDITION', `machine ${machine} already has a snapshot ${name}`);
    }
    return backend.snapshot(machine, name);
  },
  async get(backend: SnapshotBackend, machine: string, name: string): Promise<StateSnapshot> {
    const found = (await backend.listSnapshots(machine)).find((s) => s.name === name);
    if (!found) throw new WarmstartError('SNAPSHOT_NOT_FOUND', `machine ${machine} has no snapshot ${name}`);
    return found;
  },
  async restore(backend: SnapshotBackend, machine: string, name: string): Promise<Restored> {
    await backend.restore(machine, name);
    return { machine, name, restored: true };
  },
  async remove(backend: SnapshotBackend, machine: string, name: string): Promise<Deleted> {
    await backend.deleteSnapshot(machine, name);
    return { machine, name, deleted: true };
  },
};

function snapshotLocation(backend: BackendName, machine: string, name: string): string {
  return `/v1/machines/${machine}/snapshots/${name}?backend=${backend}`;
}

/**
 * `/v1/machines/:name/snapshots[/:snapshot[/restore]]?backend=`: VM/instance
 * state snapshots, as `warmstart snapshot`. The query-parameter routes of
 * before (`/v1/snapshots`) still answer, marked deprecated (a `Deprecation`
 * header here, `deprecated` in the OpenAPI document).
 */
export function registerSnapshotRoutes(app: FastifyInstance, deps: Deps): void {
  const node = { onRequest: [requireNodeScope] };
  const backendOf = (name: BackendName): Promise<SnapshotBackend> => deps.backends(name);

  app.post<{ Params: MachineParams; Querystring: BackendQuery; Body: CreateSnapshotBody }>(
    '/v1/machines/:name/snapshots',
    { schema: { params: MachineParams, querystring: BackendQuery, body: CreateSnapshotBody }, onRequest: [requireNodeScope, requireJson] },
    async (request, reply) => {
      const { backend } = request.query;
      const snap = await snapshots.create(await backendOf(backend), request.params.name, request.body.name);
      return reply
        .code(201)
        .header('location', snapshotLocation(backend, snap.machine, snap.name))
        .send(snap);
    },
  );

  app.get<{ Params: MachineParams; Querystring: BackendQuery }>(
    '/v1/machines/:name/snapshots',
    { schema: { params: MachineParams, querystring: BackendQuery }, ...node },
    async (request): Promise<{ snapshots: StateSnapshot[] }> => ({
      snapshots: await (await backendOf(request.query.backend)).listSnapshots(request.params.name),
    }),
  );

  app.get<{ Params: MachineSnapshotParams; Querystring: BackendQuery }>(
    '/v1/machines/:name/snapshots/:snapshot',
    { schema: { params: MachineSnapshotParams, querystring: BackendQuery }, ...node },
    async (request): Promise<StateSnapshot> => snapshots.get(await backendOf(request.query.backend), request.params.name, request.params.snapshot),
  );

  app.delete<{ Params: MachineSnapshotParams; Querystring: BackendQuery }>(
    '/v1/machines/:name/snapshots/:snapshot',
    { schema: { params: MachineSnapshotParams, querystring: BackendQuery }, ...node },
    async (request): Promise<Deleted> => snapshots.remove(await backendOf(request.query.backend), request.params.name, request.params.snapshot),
  );

  app.post<{ Params: MachineSnapshotParams; Querystring: BackendQuery }>(
    '/v1/machines/:name/snapshots/:snapshot/restore',
    { schema: { params: MachineSnapshotParams, querystring: BackendQuery, body: RestoreBody }, ...node },
    async (request): Promise<Restored> => snapshots.restore(await backendOf(request.query.backend), request.params.name, request.params.snapshot),
  );

  registerDeprecatedSnapshotRoutes(app, backendOf);
}

/** The routes of before, addressed by body and query; the same operations. */
function registerDeprecatedSnapshotRoutes(app: FastifyInstance, backendOf: (name: BackendName) => Promise<SnapshotBackend>): void {
  const deprecated = async (_request: unknown, reply: FastifyReply): Promise<void> => {
    void reply.header('deprecation', 'true').header('link', '</v1/machines/{name}/snapshots>; rel="successor-version"');
  };
  const body = { onRequest: [requireNodeScope, requireJson, deprecated] };
  const query = { onRequest: [requireNodeScope, deprecated] };

  app.post<{ Body: SnapshotBody }>('/v1/snapshots', { schema: { body: SnapshotBody }, ...body }, async (request, reply) => {
    const { backend, machine, name } = request.body;
    return reply.code(201).send(await snapshots.create(await backendOf(backend), machine, name));
  });

  app.get<{ Querystring: SnapshotListQuery }>(
    '/v1/snapshots',
    { schema: { querystring: SnapshotListQuery }, ...query },
    async (request): Promise<{ snapshots: StateSnapshot[] }> => ({
      snapshots: await (await backendOf(request.query.backend)).listSnapshots(request.query.machine),
    }),
  );

  app.post<{ Body: SnapshotBody }>('/v1/snapshots/restore', { schema: { body: SnapshotBody }, ...body }, async (request): Promise<Restored> => {
    const { backend, machine, name } = request.body;
    return snapshots.restore(await backendOf(backend), machine, name);
  });

  app.delete<{ Querystring: SnapshotDeleteQuery }>(
    '/v1/snapshots',
    { schema: { querystring: SnapshotDeleteQuery }, ...query },
    async (request): Promise<Deleted> => {
      const { backend, machine, name } = request.query;
      return snapshots.remove(await backendOf(backend), machine, name);
    },
  );
}
