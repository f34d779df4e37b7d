import { toErrorBody, WarmstartError, describeError } from '../errors.js';

/** Exit codes of the CLI contract. */
export const EXIT = { ready: 0, failed: 1, badInput: 2, recovery: 3 } as const;

/** What a command hands back to main: an exit code; output is already written. */
export type CommandResult = number;

export interface Io {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  readStdin: () => Promise<string>;
  env: NodeJS.ProcessEnv;
  cwd: string;
}

export const processIo: Io = {
  stdout: (t) => process.stdout.write(t),
  stderr: (t) => process.stderr.write(t),
  readStdin: async () => {
    const chunks: Buffer[] = [];
    for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks).toString('utf8');
  },
  env: process.env,
  cwd: process.cwd(),
};

/** Reports an error once, in the one error shape; returns the exit code it calls for. */
export function reportError(io: Io, err: unknown, json: boolean): CommandResult {
  const body = err instanceof WarmstartError ? toErrorBody(err) : { ...toErrorBody(err), detail: describeError(err) };
  if (json) io.stdout(`${JSON.stringify({ error: body })}\n`);
  io.stderr(`warmstart: ${body.code}: ${body.message}${body.detail ? ` (${body.detail})` : ''}\n`);
  return err instanceof WarmstartError && err.isInputError ? EXIT.badInput : EXIT.failed;
}
