import { cacheRefCommand } from './cache-ref.js';
import { doctorCommand } from './doctor.js';
import { downCommand } from './down.js';
import { EXIT, processIo, type Io } from './output.js';
import { serveCommand } from './serve.js';
import { upCommand } from './up.js';
import { packageVersion } from './version.js';

const USAGE = `usage:
  warmstart up <repository> [--workspace-id ID] [--config-name NAME] [--lightweight]
      [--cache-registry HOST[:PORT][/NAMESPACE]] [--cache-ref REF] [--no-cache]
      [--registry-username USER] [--registry-password-stdin]
      [--push-timeout SECONDS] [--no-push] [--json] [--verbose]
  warmstart down <workspace-id> [--purge] [--json]
  warmstart cache ref <repository> [--config-name NAME] [--cache-registry ...] [--json]
  warmstart doctor [--cache-registry ...] [--registry-username USER] [--registry-password-stdin] [--json]
  warmstart serve [--listen HOST:PORT] [--state-dir DIR]
  warmstart --version
`;

/** Dispatches a command line; returns the exit code. */
export async function main(argv: string[], io: Io = processIo): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'up':
      return upCommand(rest, io);
    case 'down':
      return downCommand(rest, io);
    case 'cache':
      if (rest[0] === 'ref') return cacheRefCommand(rest.slice(1), io);
      break;
    case 'doctor':
      return doctorCommand(rest, io);
    case 'serve':
      return serveCommand(rest, io);
    case '--version':
    case 'version':
      io.stdout(`${packageVersion()}\n`);
      return EXIT.ready;
    case '--help':
    case 'help':
    case '-h':
      io.stdout(USAGE);
      return EXIT.ready;
  }
  io.stderr(`warmstart: INVALID_ARGUMENT: unknown command${command ? ` '${command}'` : ''}\n${USAGE}`);
  return EXIT.badInput;
}
