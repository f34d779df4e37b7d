#!/usr/bin/env -S node --
import { main } from './commands.js';
import { EXIT } from './output.js';

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`warmstart: INTERNAL: ${(err as Error)?.stack ?? String(err)}\n`);
    process.exitCode = EXIT.failed;
  },
);
