import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fakeToken } from '../support/secret-scan.js';
import { MATRIX_FILE, REPORT_FILE, renderMatrix, type SuiteSecrets } from '../support/faults.js';

/**
 * The fault suite's one root dir. Every temp dir of the suite (state, runtime,
 * clones, agents' logs, CLI output) is made under it, because TMPDIR points
 * there for the test workers and everything they start; the secret audit
 * (secret-audit.test.ts, run last) searches it all. The suite's secrets are
 * made here once so every file uses the same ones and the audit knows them.
 */
export default function setup(): () => void {
  const dir = mkdtempSync(join(tmpdir(), 'warmstart-faults-'));
  mkdirSync(join(dir, 'tmp'), { mode: 0o700 });
  mkdirSync(join(dir, 'secrets'), { mode: 0o700 });
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const githubAppKeyFile = join(dir, 'secrets', 'github-app.pem');
  writeFileSync(githubAppKeyFile, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
  const secrets: SuiteSecrets = {
    startedAt: Date.now(),
    gitToken: fakeToken(),
    nodeGitToken: fakeToken(),
    apiToken: `wsapi_${randomBytes(24).toString('hex')}`,
    githubAppKeyFile,
  };
  writeFileSync(join(dir, 'secrets', 'secrets.json'), JSON.stringify(secrets), { mode: 0o600 });
  writeFileSync(join(dir, MATRIX_FILE), '');
  writeFileSync(join(dir, REPORT_FILE), '');
  process.env.WARMSTART_FAULTS_DIR = dir;
  process.env.TMPDIR = join(dir, 'tmp');

  return () => {
    const matrix = readFileSync(join(dir, MATRIX_FILE), 'utf8');
    const report = readFileSync(join(dir, REPORT_FILE), 'utf8');
    process.stdout.write(`\n${renderMatrix(matrix)}\n${report}\n`);
    if (process.env.WARMSTART_FAULTS_KEEP === '1') process.stdout.write(`fault suite files kept in ${dir}\n`);
    else rmSync(dir, { recursive: true, force: true });
  };
}
