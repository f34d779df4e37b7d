#!/usr/bin/env node
// A stand-in for the `cloud-hypervisor` binary, for the production spawn path:
// `--api-socket path=<p> --log-file <f>`, answers vmm.ping with its pid and
// exits on vmm.shutdown. FAKE_CH_EXIT=<text> makes it log <text> and exit 1
// at once, as a VMM does whose socket is still locked by another.
import { appendFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';

const arg = (name) => process.argv[process.argv.indexOf(name) + 1] ?? '';
const socket = arg('--api-socket').replace(/^path=/, '');
const log = arg('--log-file');
if (process.env.FAKE_CH_EXIT) {
  appendFileSync(log, `${process.env.FAKE_CH_EXIT}\n`);
  process.exit(1);
}
rmSync(socket, { force: true });
const server = createServer((req, res) => {
  if (req.url === '/api/v1/vmm.ping') {
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ version: '53.0', pid: process.pid }));
  } else if (req.url === '/api/v1/vmm.shutdown') {
    res.writeHead(200).end(() => process.exit(0));
  } else {
    res.writeHead(404).end('["Not Found"]');
  }
});
server.listen(socket, () => appendFileSync(log, `listening on ${socket}\n`));
