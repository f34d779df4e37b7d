import { posix } from 'node:path';
import type { ExecResult } from '../../../agent/src/backends/backend.js';

/**
 * Just enough of a guest shell for the contract suite: `sh -c SCRIPT [ARG0
 * ARG1...]` with `$0`-`$9`, quotes, `;` `&&` `||`, `>` and `>>`; and the
 * commands echo, cat, true, false, exit, rm, mkdir. Files live in a map the
 * fake VM keeps in its memory and writes through to its disk.
 */
type Token = { op: string } | { word: string };

function tokenize(script: string, params: string[]): Token[] {
  const tokens: Token[] = [];
  let word: string | null = null;
  const push = (): void => {
    if (word !== null) tokens.push({ word });
    word = null;
  };
  const expand = (i: number): [string, number] => {
    const next = script[i + 1] ?? '';
    if (/[0-9]/.test(next)) return [params[Number(next)] ?? '', i + 2];
    return ['$', i + 1];
  };
  for (let i = 0; i < script.length;) {
    const c = script[i]!;
    if (c === "'") {
      const end = script.indexOf("'", i + 1);
      word = (word ?? '') + script.slice(i + 1, end < 0 ? script.length : end);
      i = end < 0 ? script.length : end + 1;
    } else if (c === '"') {
      word ??= '';
      for (i++; i < script.length && script[i] !== '"';) {
        if (script[i] === '$') {
          const [v, j] = expand(i);
          word += v;
          i = j;
        } else word += script[i++];
      }
      i++;
    } else if (c === '$') {
      const [v, j] = expand(i);
      word = (word ?? '') + v;
      i = j;
    } else if (c === '\\' && i + 1 < script.length) {
      word = (word ?? '') + script[i + 1];
      i += 2;
    } else if (/\s/.test(c) && c !== '\n') {
      push();
      i++;
    } else {
      const op = ['&&', '||', '>>'].find((o) => script.startsWith(o, i)) ?? (';\n>'.includes(c) ? c : null);
      if (op) {
        push();
        tokens.push({ op: op === '\n' ? ';' : op });
        i += op.length;
      } else {
        word = (word ?? '') + c;
        i++;
      }
    }
  }
  push();
  return tokens;
}

class Exit extends Error {
  constructor(readonly code: number) {
    super(`exit ${code}`);
  }
}

function path(p: string): string {
  return posix.resolve('/root', p);
}

/** One simple command; returns its exit status and appends to out/err. */
function command(files: Map<string, string>, words: string[], input: string, io: { out: string; err: string }, last: number): number {
  const [name, ...args] = words;
  switch (name) {
    case undefined:
    case 'true':
    case 'mkdir':
      return 0;
    case 'false':
      return 1;
    case 'exit':
      throw new Exit(args[0] === undefined ? last : Number(args[0]));
    case 'echo': {
      const n = args[0] === '-n';
      io.out += (n ? args.slice(1) : args).join(' ') + (n ? '' : '\n');
      return 0;
    }
    case 'cat': {
      if (args.length === 0) {
        io.out += input;
        return 0;
      }
      let status = 0;
      for (const a of args) {
        const content = files.get(path(a));
        if (content === undefined) {
          io.err += `cat: ${a}: No such file or directory\n`;
          status = 1;
        } else io.out += content;
      }
      return status;
    }
    case 'rm':
      for (const a of args.filter((x) => !x.startsWith('-'))) files.delete(path(a));
      return 0;
    default:
      io.err += `sh: 1: ${name}: not found\n`;
      return 127;
  }
}

/** Runs a parsed script: simple commands joined by ; && ||, each with optional > or >> redirects. */
function script(files: Map<string, string>, tokens: Token[], input: string): ExecResult {
  const io = { out: '', err: '' };
  let status = 0;
  let skip = false;
  try {
    for (let i = 0; i <= tokens.length;) {
      const words: string[] = [];
      let redirect: { file: string; append: boolean } | null = null;
      for (; i < tokens.length; i++) {
        const t = tokens[i]!;
        if ('word' in t) words.push(t.word);
        else if (t.op === '>' || t.op === '>>') {
          const target = tokens[++i];
          redirect = { file: target && 'word' in target ? target.word : '', append: t.op === '>>' };
        } else break;
      }
      const connector = tokens[i] && 'op' in tokens[i]! ? (tokens[i] as { op: string }).op : null;
      i++;
      if (!skip) {
        const sink = { out: '', err: '' };
        status = command(files, words, input, sink, status);
        io.err += sink.err;
        if (redirect) {
          const p = path(redirect.file);
          files.set(p, (redirect.append ? (files.get(p) ?? '') : '') + sink.out);
        } else io.out += sink.out;
      }
      skip = (connector === '&&' && status !== 0) || (connector === '||' && status === 0);
      if (connector === null) break;
    }
  } catch (err) {
    if (!(err instanceof Exit)) throw err;
    status = err.code;
  }
  return { exitCode: status, stdout: io.out, stderr: io.err };
}

/** Runs argv in the fake guest: `sh -c` scripts are parsed, anything else is one command. */
export function runInGuest(files: Map<string, string>, argv: string[], input = ''): ExecResult {
  if (argv[0] === 'sh' && argv[1] === '-c') {
    return script(files, tokenize(argv[2] ?? '', argv.slice(3)), input);
  }
  return script(
    files,
    argv.map((word) => ({ word })),
    input,
  );
}
