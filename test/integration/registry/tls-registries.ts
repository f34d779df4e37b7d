/**
 * Real registries (the testbed's `docker-registry`, distribution 2.8) behind
 * TLS with certificates from a test CA made here with openssl, which no
 * system store holds, for registry-tls.test.ts. Each registry listens on a
 * free port of the given address and is stopped by its pid.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFile, mkdir } from 'node:fs/promises';
import { connect, createServer, type AddressInfo } from 'node:net';
import { networkInterfaces } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';

/** The files of the test PKI, by role. */
export interface Pki {
  /** CA that signed the registries' server certificate */
  ca: string;
  serverCert: string;
  serverKey: string;
  /** CA the client-certificate registry accepts, and a pair it signed */
  clientCa: string;
  clientCert: string;
  clientKey: string;
  /** a pair signed by a CA no registry accepts */
  strangerCert: string;
  strangerKey: string;
}

/**
 * An IPv4 address of this machine that is not loopback: dockerd treats
 * 127.0.0.0/8 as insecure by default, so only a registry elsewhere shows
 * what a verified registry needs.
 */
export function nonLoopbackAddress(): string {
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  }
  throw new Error('this machine has no non-loopback IPv4 address to run a verified registry on');
}

const openssl = (args: string[], cwd: string) => execa('openssl', args, { cwd });

/** A self-signed CA (P-256) named `name` in `dir`. */
async function makeCa(dir: string, name: string): Promise<void> {
  await openssl(
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-days',
      '2',
      '-subj',
      `/CN=warmstart test ${name}`,
      '-keyout',
      `${name}.key`,
      '-out',
      `${name}.crt`,
    ],
    dir,
  );
}

/** A key and a certificate `out` signed by CA `ca` with the given extensions. */
async function issue(dir: string, ca: string, out: { key: string; cert: string }, cn: string, extensions: string): Promise<void> {
  await openssl(
    [
      'req',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-subj',
      `/CN=${cn}`,
      '-keyout',
      out.key,
      '-out',
      `${out.cert}.csr`,
    ],
    dir,
  );
  await writeFile(join(dir, `${out.cert}.ext`), extensions);
  await openssl(
    [
      'x509',
      '-req',
      '-in',
      `${out.cert}.csr`,
      '-CA',
      `${ca}.crt`,
      '-CAkey',
      `${ca}.key`,
      '-CAcreateserial',
      '-days',
      '2',
      '-out',
      out.cert,
      '-extfile',
      `${out.cert}.ext`,
    ],
    dir,
  );
}

/** The test PKI in `dir`; the server certificate names `address` and 127.0.0.1. */
export async function makePki(dir: string, address: string): Promise<Pki> {
  await mkdir(dir, { recursive: true });
  await makeCa(dir, 'server-ca');
  await makeCa(dir, 'client-ca');
  await makeCa(dir, 'stranger-ca');
  await issue(
    dir,
    'server-ca',
    { key: 'server.key', cert: 'server.crt' },
    'registry',
    `subjectAltName=IP:${address},IP:127.0.0.1\nextendedKeyUsage=serverAuth\n`,
  );
  await issue(dir, 'client-ca', { key: 'client.key', cert: 'client.cert' }, 'warmstart node', 'extendedKeyUsage=clientAuth\n');
  await issue(dir, 'stranger-ca', { key: 'stranger.key', cert: 'stranger.cert' }, 'someone else', 'extendedKeyUsage=clientAuth\n');
  const at = (f: string) => join(dir, f);
  return {
    ca: at('server-ca.crt'),
    serverCert: at('server.crt'),
    serverKey: at('server.key'),
    clientCa: at('client-ca.crt'),
    clientCert: at('client.cert'),
    clientKey: at('client.key'),
    strangerCert: at('stranger.cert'),
    strangerKey: at('stranger.key'),
  };
}

/** A port of `address` that was free a moment ago. */
async function freePort(address: string): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, address, resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

export interface TestRegistry {
  /** address:port */
  host: string;
  stop(): Promise<void>;
}

/** Starts an open (no auth) registry on `address`: plain http, or TLS, optionally requiring client certificates of `clientCa`. */
export async function startRegistry(dir: string, address: string, tls?: { cert: string; key: string; clientCa?: string }): Promise<TestRegistry> {
  const port = await freePort(address);
  const data = join(dir, `data-${port}`);
  await mkdir(data, { recursive: true });
  const config = [
    'version: 0.1',
    'log: { level: warn, accesslog: { disabled: true } }',
    'storage:',
    `  filesystem: { rootdirectory: ${data} }`,
    '  delete: { enabled: true }',
    'http:',
    `  addr: ${address}:${port}`,
    ...(tls
      ? ['  tls:', `    certificate: ${tls.cert}`, `    key: ${tls.key}`, ...(tls.clientCa ? ['    clientcas:', `      - ${tls.clientCa}`] : [])]
      : []),
  ].join('\n');
  const file = join(dir, `registry-${port}.yml`);
  await writeFile(file, `${config}\n`);
  const child: ChildProcess = spawn('docker-registry', ['serve', file], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (b: Buffer) => (stderr += b.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  for (let i = 0; ; i++) {
    if (await accepts(address, port)) break;
    if (child.exitCode !== null || i > 80) {
      child.kill();
      throw new Error(`registry on ${address}:${port} did not start: ${stderr.slice(-500)}`);
    }
    await new Promise((r) => setTimeout(r, 125));
  }
  return {
    host: `${address}:${port}`,
    stop: async () => {
      if (child.exitCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}

function accepts(address: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, address);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}
