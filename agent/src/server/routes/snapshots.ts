import type { FastifyInstance } from 'fastify';
import { SnapshotBody } from '../../../../shared/src/api.js';
import { SnapshotDeleteQuery, SnapshotListQuery } from '../../../../shared/src/openapi.js';
import type { StateSnapshot } from '../../backends/backend.js';
import { requireNodeScope, type MachineRouteDeps } from './machines.js';
import { requireJson } from './workspace-routes.js';

/**
 * `/v1/snapshots`: VM/instance state snapshots, as `warmstart snapshot`.
 * A backend without them answers 501 BACKEND_UNSUPPORTED.
 */
export function registerSnapshotRoutes(app: FastifyInstance, deps: Pick<MachineRouteDeps, 'backends'>): void {
  app.post<{ Body: SnapshotBody }>(
    '/v1/snapshots',
    { schema: { body: SnapshotBody }, onRequest: [requireNodeScope, requireJson] },
    async (request, reply) => {
      const { backend, machine, name } = request.body;
      const snapshot: StateSnapshot = await (await deps.backends(backend)).snapshot(machine, name);
      return reply.code(201).send(snapshot);
    },
  );

  app.get<{ Querystring: SnapshotListQuery }>(
    '/v1/snapshots',
    { schema: { querystring: SnapshotListQuery }, onRequest: [requireNodeScope] },
    async (request): Promise<{ snapshots: StateSnapshot[] }> => ({
      snapshots: await (await deps.backends(request.query.backend)).listSnapshots(request.query.machine),
    }),
  );

  app.post<{ Body: SnapshotBody }>(
    '/v1/snapshots/restore',
    { schema: { body: SnapshotBody }, onRequest: [requireNodeScope, requireJson] },
    async (request): Promise<{ machine: string; name: string; restored: true }> => {
      const { backend, machine, name } = request.body;
      await (await deps.backends(backend)).restore(machine, name);
      return { machine, name, restored: true };
    },
  );

  app.delete<{ Querystring: SnapshotDeleteQuery }>(
    '/v1/snapshots',
    { schema: { querystring: SnapshotDeleteQuery }, onRequest: [requireNodeScope] },
    async (request): Promise<{ machine: string; name: string; deleted: true }> => {
      const { backend, machine, name } = request.query;
      await (await deps.backends(backend)).deleteSnapshot(machine, name);
      return { machine, name, deleted: true };
    },
  );
}
