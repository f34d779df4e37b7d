// limactl logs with logrus's text formatter on stderr when stderr is not a
// terminal: `time="…" level=info msg="…"`, the value quoted (Go %q) only when
// it holds a character outside [A-Za-z0-9-._/@^+]. Errors end the process
// through logrus.Fatal: level=fatal, exit status 1 (cmd/limactl/main.go).

function value(v) {
  return /^[A-Za-z0-9\-._/@^+]+$/.test(v) ? v : JSON.stringify(v);
}

export function log(level, msg) {
  process.stderr.write(`time=${JSON.stringify(new Date().toISOString().replace(/\.\d+Z$/, 'Z'))} level=${level} msg=${value(msg)}\n`);
}

export class Fatal extends Error {
  constructor(msg, exitCode = 1) {
    super(msg);
    this.exitCode = exitCode;
  }
}

/** Ends the process like main(): handleExitCoder, then logrus.Fatal. */
export function die(err) {
  if (err instanceof Fatal) {
    if (err.message) log('fatal', err.message);
    process.exitCode = err.exitCode;
    return;
  }
  log('fatal', err instanceof Error ? err.message : String(err));
  process.exitCode = 1;
}
