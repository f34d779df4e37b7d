import fc from 'fast-check';
import { parseCacheRegistry, parseImageRef } from '../../../agent/src/cache/ref.js';
import { parseRepository } from '../../../agent/src/workspace/repository.js';
import { validateConfigName, validateWorkspaceId } from '../../../agent/src/workspace/validate.js';
import { nastyString } from './strings.js';

/**
 * Command lines for `warmstart up`, `down` and `cache ref` that must be
 * refused before anything is made: each carries at least one planted fault
 * (an unknown flag, a bad id, config name, repository, registry, cache ref,
 * push timeout, a wrong number of arguments, a password flag without its
 * partner), the rest valid. `expect` lists the codes the planted faults may
 * give (the CLI reports the first it finds). A valid workspace id is always
 * one of this run's (`{ours}`), so even a mistake here could not touch
 * another test's workspace.
 */
export interface CliCase {
  command: 'up' | 'down' | 'cache ref';
  /** argv after the command; `@@ID@@` is replaced by the run's id for this case */
  argv: string[];
  stdin: string;
  faults: string[];
  expect: string[];
}

const refused =
  (check: (s: string) => unknown) =>
  (s: string): boolean => {
    try {
      check(s);
      return false;
    } catch {
      return true;
    }
  };

// argv cannot carry NUL; anything else goes, except asking for help (`--help`/`-h` anywhere prints the usage, exit 0).
const argString = nastyString.map((s) => s.replace(/\u0000/g, '\u2400')).filter((s) => s !== '--help' && s !== '-h');
const hugeArg = fc.constantFrom(60_000, 100_000).map((n) => 'a'.repeat(n));

const badId = fc.oneof(argString, hugeArg, fc.constantFrom('../x', 'A', '-a', 'a/b', 'a'.repeat(64))).filter(refused(validateWorkspaceId));
const badConfig = fc
  .oneof(argString, fc.constantFrom('../x', '..', 'a/b', 'a\\b', '.hidden', ' x', 'x'.repeat(101)))
  .filter(refused(validateConfigName));
const badRepo = fc
  .oneof(
    argString,
    fc.constantFrom('ftp://x/a/b', 'http://x/a/b', 'git://x/a/b', 'ext::sh -c id', 'https://u:p@x/a/b', 'https://x/../a', 'a b/c', 'git@x:../a'),
  )
  .filter(refused((s) => parseRepository(s, { cwd: '/' })));
const badRegistry = fc.oneof(argString, fc.constantFrom('http://x', 'a b', 'UPPER', '127.0.0.1:99999', 'x/../y')).filter(refused(parseCacheRegistry));
const badRef = fc.oneof(argString, fc.constantFrom('::', 'a//b', 'UPPER/x', 'a:b:c', '@sha256:x')).filter(refused(parseImageRef));
const badTimeout = fc.constantFrom('0', '-1', 'abc', '', 'NaN', 'Infinity', '1e3', '0x10', ' 5');
const unknownFlag = fc.constantFrom(
  '--wrkspace-id',
  '--no-such-flag',
  '-x',
  '--\u{1F984}',
  '--workspace',
  '--json=1',
  '--lightweight=yes',
  '--purge=true',
  '--verbose=2',
);

const goodRepo = fc.constantFrom(
  'octo/hello',
  'https://fuzz.invalid/acme/app.git',
  'git@fuzz.invalid:acme/app.git',
  'ssh://git@fuzz.invalid/acme/app',
  './',
  '../',
);
const goodConfig = fc.constantFrom('dev', 'python', 'a.b');

/** `--k=v` or `--k v`; a value that looks like an option always goes with `=`. */
const flag = (k: string, v: string, joined: boolean): string[] => (joined || v.startsWith('-') ? [`--${k}=${v}`] : [`--${k}`, v]);

/** `group`: faults of one group undo each other (a username fault and a password fault together make a valid pair), so a case takes at most one of it. */
type Part = {
  flags: string[][];
  repo?: string;
  extraPositionals?: string[];
  dropPositional?: boolean;
  stdin?: string;
  fault?: string;
  code?: string[];
  group?: string;
};

const upFault: fc.Arbitrary<Part> = fc.oneof(
  fc.record({ f: unknownFlag }).map(({ f }): Part => ({ flags: [[f]], fault: `unknown flag ${f}`, code: ['INVALID_ARGUMENT'] })),
  fc
    .record({ v: badId, j: fc.boolean() })
    .map(({ v, j }): Part => ({ flags: [flag('workspace-id', v, j)], fault: 'bad id', code: ['INVALID_WORKSPACE_ID'] })),
  fc
    .record({ v: badConfig, j: fc.boolean() })
    .map(({ v, j }): Part => ({ flags: [flag('config-name', v, j)], fault: 'bad config name', code: ['INVALID_CONFIG_NAME'] })),
  // A repository that starts with '-' is read as an option unless `--` comes first.
  badRepo.map((v): Part => ({
    flags: [],
    repo: v,
    fault: 'bad repository',
    code: v.startsWith('-') ? ['INVALID_ARGUMENT', 'INVALID_REPOSITORY'] : ['INVALID_REPOSITORY'],
  })),
  fc
    .record({ v: badRegistry, j: fc.boolean() })
    .map(({ v, j }): Part => ({ flags: [flag('cache-registry', v, j)], fault: 'bad registry', code: ['INVALID_REGISTRY'] })),
  fc
    .record({ v: badRef, j: fc.boolean() })
    .map(({ v, j }): Part => ({ flags: [flag('cache-ref', v, j)], fault: 'bad cache ref', code: ['INVALID_CACHE_REF'] })),
  fc
    .record({ v: badTimeout })
    .map(({ v }): Part => ({ flags: [flag('push-timeout', v, true)], fault: 'bad push timeout', code: ['INVALID_ARGUMENT'] })),
  fc.constant<Part>({ flags: [['--registry-username', 'fuzz']], fault: 'username without password', group: 'password', code: ['INVALID_ARGUMENT'] }),
  fc.constant<Part>({
    flags: [['--registry-username', 'fuzz'], ['--registry-password-stdin']],
    stdin: '',
    fault: 'empty password on stdin',
    group: 'password',
    code: ['INVALID_ARGUMENT'],
  }),
  fc.constant<Part>({
    flags: [['--registry-password-stdin']],
    stdin: 'fuzz-password\n',
    fault: 'password without username',
    group: 'password',
    code: ['INVALID_ARGUMENT'],
  }),
  argString.map((p): Part => ({
    flags: [],
    extraPositionals: [p.startsWith('-') ? 'extra' : p || 'extra'],
    fault: 'two repositories',
    code: ['INVALID_ARGUMENT'],
  })),
  fc.constant<Part>({ flags: [], dropPositional: true, fault: 'no repository', code: ['INVALID_ARGUMENT'] }),
);

const downFault: fc.Arbitrary<Part> = fc.oneof(
  fc.record({ f: unknownFlag }).map(({ f }): Part => ({ flags: [[f]], fault: `unknown flag ${f}`, code: ['INVALID_ARGUMENT'] })),
  badId.map((v): Part => ({
    flags: [],
    repo: v,
    fault: 'bad id',
    code: v.startsWith('-') ? ['INVALID_ARGUMENT', 'INVALID_WORKSPACE_ID'] : ['INVALID_WORKSPACE_ID'],
  })),
  fc.constant<Part>({ flags: [], dropPositional: true, fault: 'no id', code: ['INVALID_ARGUMENT'] }),
  fc.constant<Part>({ flags: [], extraPositionals: ['@@ID@@'], fault: 'two ids', code: ['INVALID_ARGUMENT'] }),
);

const cacheRefFault: fc.Arbitrary<Part> = fc.oneof(
  fc.record({ f: unknownFlag }).map(({ f }): Part => ({ flags: [[f]], fault: `unknown flag ${f}`, code: ['INVALID_ARGUMENT'] })),
  fc
    .record({ v: badConfig, j: fc.boolean() })
    .map(({ v, j }): Part => ({ flags: [flag('config-name', v, j)], fault: 'bad config name', code: ['INVALID_CONFIG_NAME'] })),
  badRepo.map((v): Part => ({
    flags: [],
    repo: v,
    fault: 'bad repository',
    code: v.startsWith('-') ? ['INVALID_ARGUMENT', 'INVALID_REPOSITORY'] : ['INVALID_REPOSITORY'],
  })),
  fc
    .record({ v: badRegistry, j: fc.boolean() })
    .map(({ v, j }): Part => ({ flags: [flag('cache-registry', v, j)], fault: 'bad registry', code: ['INVALID_REGISTRY'] })),
  fc.constant<Part>({ flags: [], fault: 'no registry', code: ['INVALID_REGISTRY'] }),
  fc.constant<Part>({ flags: [], dropPositional: true, fault: 'no repository', code: ['INVALID_ARGUMENT'] }),
);

function assemble(command: CliCase['command'], faults: Part[], good: Part, order: number[], json: boolean): CliCase {
  const parts = [...faults, good];
  const repoPart = faults.find((p) => p.repo !== undefined) ?? good;
  const positionals = faults.some((p) => p.dropPositional) ? [] : [repoPart.repo!, ...faults.flatMap((p) => p.extraPositionals ?? [])];
  // Flags of faults win over the good part's flag of the same name (the CLI takes the last one given).
  const faultFlagNames = new Set(faults.flatMap((p) => p.flags.map((f) => f[0]!.split('=')[0])));
  const flags = [...good.flags.filter((f) => !faultFlagNames.has(f[0]!.split('=')[0])), ...faults.flatMap((p) => p.flags)];
  if (json) flags.push(['--json']);
  // Positionals go among the flags, in a generated order.
  const noRegistry = faults.some((p) => p.fault === 'no registry');
  const items: string[][] = [...flags.filter((f) => !(noRegistry && f[0]!.startsWith('--cache-registry'))), ...positionals.map((p) => [p])];
  const ordered = items.length ? order.map((i) => items[i % items.length]!).filter((v, i, a) => a.indexOf(v) === i) : [];
  for (const it of items) if (!ordered.includes(it)) ordered.push(it);
  return {
    command,
    argv: ordered.flat(),
    stdin: parts.find((p) => p.stdin !== undefined)?.stdin ?? '',
    faults: faults.map((p) => p.fault!),
    expect: [...new Set(faults.flatMap((p) => p.code!))],
  };
}

const order = fc.array(fc.nat({ max: 20 }), { minLength: 8, maxLength: 8 });

const upCase = fc
  .record({
    faults: fc.uniqueArray(upFault, { minLength: 1, maxLength: 2, selector: (p) => p.group ?? p.fault }),
    repo: goodRepo,
    config: goodConfig,
    withConfig: fc.boolean(),
    order,
    json: fc.boolean(),
    lightweight: fc.boolean(),
  })
  .map(({ faults, repo, config, withConfig, order: o, json, lightweight }) =>
    assemble(
      'up',
      faults,
      {
        repo,
        flags: [
          ['--workspace-id', '@@ID@@'],
          ...(withConfig ? [['--config-name', config]] : []),
          ...(lightweight ? [['--lightweight']] : []),
          ['--no-push'],
        ],
      },
      o,
      json,
    ),
  );

const downCase = fc
  .record({
    faults: fc.uniqueArray(downFault, { minLength: 1, maxLength: 2, selector: (p) => p.group ?? p.fault }),
    purge: fc.boolean(),
    order,
    json: fc.boolean(),
  })
  .map(({ faults, purge, order: o, json }) => assemble('down', faults, { repo: '@@ID@@', flags: purge ? [['--purge']] : [] }, o, json));

const cacheRefCase = fc
  .record({
    faults: fc.uniqueArray(cacheRefFault, { minLength: 1, maxLength: 2, selector: (p) => p.group ?? p.fault }),
    repo: goodRepo,
    config: goodConfig,
    withConfig: fc.boolean(),
    order,
    json: fc.boolean(),
  })
  .map(({ faults, repo, config, withConfig, order: o, json }) =>
    assemble(
      'cache ref',
      faults,
      { repo, flags: [['--cache-registry', '127.0.0.1:9/ns'], ...(withConfig ? [['--config-name', config]] : [])] },
      o,
      json,
    ),
  );

export const cliCase: fc.Arbitrary<CliCase> = fc.oneof(
  { weight: 3, arbitrary: upCase },
  { weight: 1, arbitrary: downCase },
  { weight: 1, arbitrary: cacheRefCase },
);
