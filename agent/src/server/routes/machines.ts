import type { FastifyInstance, FastifyRequest } from 'fastify';
import { CreateMachineBody } from '../../../../shared/src/api.js';
import { BackendQuery, MachineParams } from '../../../../shared/src/openapi.js';
import type { BackendName, Machine, MachineImage, SnapshotBackend } from '../../backends/backend.js';
import type { ResourceJobs } from '../../jobs/resource-jobs.js';
import { cacheList } from '../../machines/cache.js';
import { checkMachineInput, checkMachineUp, machineJobRequest, runMachineUp, type MachineJobInput } from '../../machines/machine-job.js';
import type { BackendTiming } from '../../machines/machine-snapshot.js';
import type { PostLaunchHook } from '../../machines/machine-up.js';
import { apiError } from '../http-error.js';
import { accepted } from './job-routes.js';
import { requireJson } from './workspace-routes.js';

/** What the machine and snapshot routes need from the agent. */
export interface MachineRouteDeps {
  /** The backend of that name, configured as the CLI's createBackend does (serve keeps one per name). */
  backends: (name: BackendName) => Promise<SnapshotBackend>;
  /** Runs after every launch, hit or miss; serve passes the host-specifics hook, as the CLI does. */
  postLaunch?: PostLaunchHook;
  /** The backend's own timing of a machine's last launch, boot or restore (cloud-hypervisor reports them). */
  lastTiming?: (backend: BackendName, machine: string) => BackendTiming | undefined;
}

/** Machine bodies carry a provision script and files (base64): more room than the API's default 64 KiB. */
export const MACHINE_BODY_LIMIT = 4 * 1024 * 1024;

/**
 * Machines, images and snapshots belong to the node, not to a workspace: a
 * JWT scoped to one workspace may not touch them (a route-level onRequest
 * hook, after auth).
 */
export async function requireNodeScope(request: FastifyRequest): Promise<void> {
  const p = request.principal;
  if (p?.kind === 'jwt' && p.workspace !== undefined) {
    throw apiError('FORBIDDEN', 'the token is scoped to a workspace; machines, snapshots and images need a node-wide token');
  }
}

/**
 * `/v1/machines`: `machine up` as an accepted job (202, read at
 * `/v1/jobs/:jobId`: a miss provisions, which may take minutes), list,
 * remove, and the provisioned-image cache, per backend.
 */
export function registerMachineRoutes(app: FastifyInstance, deps: MachineRouteDeps, jobs: ResourceJobs, accepting: () => boolean): void {
  const refuseWhenShuttingDown = async (): Promise<void> => {
    if (!accepting()) throw apiError('SHUTTING_DOWN', 'the agent is shutting down and starts no new machines');
  };

  app.post<{ Body: CreateMachineBody }>(
    '/v1/machines',
    {
      schema: { body: CreateMachineBody },
      bodyLimit: MACHINE_BODY_LIMIT,
      onRequest: [requireNodeScope, refuseWhenShuttingDown, requireJson],
    },
    async (request, reply) => {
      const body = request.body;
      // Validate first, then accept: what can be refused now is refused with
      // its 4xx (or 503 for a backend that is not there) and nothing is made.
      const input: MachineJobInput = {
        name: body.name,
        base: body.base,
        snapshot: body.snapshot ?? null,
        ...(body.provision !== undefined ? { provision: { path: 'provision (request body)', content: Buffer.from(body.provision, 'utf8') } } : {}),
        files: (body.files ?? []).map((f) => ({ path: f.path, content: Buffer.from(f.content, 'base64') })),
      };
      checkMachineInput(input);
      const backend = await deps.backends(body.backend);
      await checkMachineUp(backend, input);
      // A client that goes away does not stop the job; a failure removes the half-made machine, as on the CLI.
      const view = await jobs.submit({
        kind: 'machine',
        target: `machine ${body.name} on ${body.backend}`,
        request: machineJobRequest(backend, input),
        run: (progress) =>
          runMachineUp(backend, input, {
            progress,
            ...(deps.postLaunch ? { postLaunch: deps.postLaunch } : {}),
            lastTiming: () => deps.lastTiming?.(body.backend, body.name),
          }),
      });
      return accepted(reply, view);
    },
  );

  app.get<{ Querystring: BackendQuery }>(
    '/v1/machines',
    { schema: { querystring: BackendQuery }, onRequest: [requireNodeScope] },
    async (request): Promise<{ machines: Machine[] }> => ({
      machines: await (await deps.backends(request.query.backend)).listMachines(),
    }),
  );

  app.get<{ Querystring: BackendQuery }>(
    '/v1/machines/cache',
    { schema: { querystring: BackendQuery }, onRequest: [requireNodeScope] },
    async (request): Promise<{ images: MachineImage[] }> => ({
      images: await cacheList(await deps.backends(request.query.backend)),
    }),
  );

  app.delete<{ Params: MachineParams; Querystring: BackendQuery }>(
    '/v1/machines/:name',
    { schema: { params: MachineParams, querystring: BackendQuery }, onRequest: [requireNodeScope] },
    async (request): Promise<{ machine: string; deleted: true }> => {
      await (await deps.backends(request.query.backend)).removeMachine(request.params.name);
      return { machine: request.params.name, deleted: true };
    },
  );
}
