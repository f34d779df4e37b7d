// The guest side of the fake `limactl shell`: just enough of a POSIX shell
// for provisioning scripts and the tests (echo, cat, printf, exit, true,
// false, test, rm, touch, mkdir, sleep; `;` `&&` `||` and newlines; `>` `>>`
// `2>` `>&2` `2>&1` redirections, /dev/null; '…' and "…" quoting; $0..$9 $@
// $# $? expansion).
// Anything else fails the way dash does (127, "not found"), never silently.
import { posix } from 'node:path';

function tokenize(script, params) {
  const tokens = [];
  let i = 0;
  let word = null;
  const push = () => {
    if (word !== null) tokens.push({ word });
    word = null;
  };
  const expand = (name) => {
    if (/^\d$/.test(name)) return params.argv[Number(name)] ?? '';
    if (name === '@' || name === '*') return params.argv.slice(1).join(' ');
    if (name === '#') return String(Math.max(0, params.argv.length - 1));
    if (name === '?') return String(params.status());
    return params.env[name] ?? '';
  };
  const dollar = () => {
    const m = /^\$(?:\{(\w+|[@*#?])\}|(\d|[@*#?])|([A-Za-z_]\w*))/.exec(script.slice(i));
    if (!m) {
      i += 1;
      return '$';
    }
    i += m[0].length;
    return expand(m[1] ?? m[2] ?? m[3]);
  };
  while (i < script.length) {
    const c = script[i];
    if (c === ' ' || c === '\t') {
      push();
      i += 1;
    } else if (c === '\n' || c === ';') {
      push();
      tokens.push({ op: ';' });
      i += 1;
    } else if (script.startsWith('&&', i) || script.startsWith('||', i)) {
      push();
      tokens.push({ op: script.slice(i, i + 2) });
      i += 2;
    } else if ((script.startsWith('>&2', i) || script.startsWith('1>&2', i) || script.startsWith('2>&1', i)) && word === null) {
      const op = script.startsWith('2>&1', i) ? '2>&1' : '>&2';
      tokens.push({ op });
      i += script.startsWith('>&2', i) ? 3 : 4;
    } else if (c === '|' || c === '&' || c === '<' || c === '`' || script.startsWith('$(', i)) {
      throw new Error(`unsupported shell syntax near ${JSON.stringify(script.slice(i, i + 10))}`);
    } else if (script.startsWith('2>', i) && word === null) {
      push();
      tokens.push({ op: '2>' });
      i += 2;
    } else if (c === '>') {
      push();
      const append = script[i + 1] === '>';
      tokens.push({ op: append ? '>>' : '>' });
      i += append ? 2 : 1;
    } else if (c === "'") {
      const end = script.indexOf("'", i + 1);
      if (end < 0) throw new Error('Syntax error: Unterminated quoted string');
      word = (word ?? '') + script.slice(i + 1, end);
      i = end + 1;
    } else if (c === '"') {
      word = word ?? '';
      i += 1;
      while (i < script.length && script[i] !== '"') {
        if (script[i] === '\\' && '"\\$`'.includes(script[i + 1] ?? '')) {
          word += script[i + 1];
          i += 2;
        } else if (script[i] === '$') word += dollar();
        else word += script[i++];
      }
      if (i >= script.length) throw new Error('Syntax error: Unterminated quoted string');
      i += 1;
    } else if (c === '\\') {
      word = (word ?? '') + (script[i + 1] ?? '');
      i += 2;
    } else if (c === '$') {
      word = (word ?? '') + dollar();
    } else if (c === '#' && word === null) {
      while (i < script.length && script[i] !== '\n') i += 1;
    } else {
      word = (word ?? '') + c;
      i += 1;
    }
  }
  push();
  return tokens;
}

const abs = (p) => posix.resolve('/', p);

function printf(format, args) {
  let out = '';
  let k = 0;
  for (let i = 0; i < format.length; i++) {
    if (format[i] === '\\' && format[i + 1] === 'n') {
      out += '\n';
      i += 1;
    } else if (format[i] === '%' && format[i + 1] === 's') {
      out += args[k++] ?? '';
      i += 1;
    } else if (format[i] === '%' && format[i + 1] === '%') {
      out += '%';
      i += 1;
    } else out += format[i];
  }
  return out;
}

/** Runs one simple command; returns its exit status. `io` holds the guest fs and the output buffers. */
function simple(argv, io, stdin) {
  const [cmd, ...args] = argv;
  switch (cmd) {
    case undefined:
    case 'true':
    case ':':
    case 'sleep':
      return 0;
    case 'false':
      return 1;
    case 'echo': {
      const noNewline = args[0] === '-n';
      io.out(`${(noNewline ? args.slice(1) : args).join(' ')}${noNewline ? '' : '\n'}`);
      return 0;
    }
    case 'printf':
      io.out(printf(args[0] ?? '', args.slice(1)));
      return 0;
    case 'cat': {
      if (args.length === 0) {
        io.out(stdin);
        return 0;
      }
      let status = 0;
      for (const a of args) {
        const content = io.files[abs(a)];
        if (content === undefined) {
          io.err(`cat: ${a}: No such file or directory\n`);
          status = 1;
        } else io.out(content);
      }
      return status;
    }
    case 'test':
    case '[': {
      const a = cmd === '[' ? args.slice(0, -1) : args;
      const p = abs(a[1] ?? '');
      if (a[0] === '-f' || a[0] === '-e') return io.files[p] !== undefined ? 0 : 1;
      if (a[0] === '-d') return p === '/' || Object.keys(io.files).some((f) => f.startsWith(`${p}/`)) ? 0 : 1;
      return a.length === 1 && a[0] !== '' ? 0 : 1;
    }
    case 'rm':
      for (const a of args.filter((x) => !x.startsWith('-'))) io.remove(abs(a));
      return 0;
    case 'touch':
      for (const a of args) if (io.files[abs(a)] === undefined) io.write(abs(a), '');
      return 0;
    case 'mkdir':
      return 0;
    case 'exit':
      throw Object.assign(new Error('exit'), { exitStatus: args[0] === undefined ? io.status : Number(args[0]) & 255 });
    default:
      io.err(`sh: 1: ${cmd}: not found\n`);
      return 127;
  }
}

/** Runs a script; `argv` = [$0, $1, ...]. */
function script(text, argv, io, stdin) {
  const tokens = tokenize(text, { argv, env: { HOME: '/root', USER: 'root' }, status: () => io.status });
  let words = [];
  let redirect = null;
  let connector = ';';
  const flush = () => {
    const run = connector === ';' || (connector === '&&' && io.status === 0) || (connector === '||' && io.status !== 0);
    if (run && (words.length > 0 || redirect)) {
      if (redirect?.dup) {
        const [from, to] = redirect.dup === '>&2' ? ['out', 'err'] : ['err', 'out'];
        const saved = io[from];
        io[from] = io[to];
        try {
          io.status = simple(words, io, stdin);
        } finally {
          io[from] = saved;
        }
      } else if (redirect?.fd === 1 && redirect.path === '/dev/null') {
        const out = io.out;
        io.out = () => {};
        try {
          io.status = simple(words, io, stdin);
        } finally {
          io.out = out;
        }
      } else if (redirect?.fd === 1) {
        let captured = '';
        const out = io.out;
        io.out = (s) => (captured += s);
        try {
          io.status = simple(words, io, stdin);
        } finally {
          io.out = out;
        }
        const path = abs(redirect.path);
        io.write(path, redirect.append ? (io.files[path] ?? '') + captured : captured);
      } else if (redirect?.fd === 2) {
        const err = io.err;
        io.err = () => {};
        try {
          io.status = simple(words, io, stdin);
        } finally {
          io.err = err;
        }
      } else io.status = simple(words, io, stdin);
    }
    words = [];
    redirect = null;
  };
  for (let k = 0; k < tokens.length; k++) {
    const t = tokens[k];
    if (t.word !== undefined) words.push(t.word);
    else if (t.op === '>&2' || t.op === '2>&1') redirect = { dup: t.op };
    else if (t.op === '>' || t.op === '>>' || t.op === '2>') {
      const target = tokens[++k];
      if (target?.word === undefined) throw new Error('Syntax error: redirection without a file');
      redirect = { fd: t.op === '2>' ? 2 : 1, append: t.op === '>>', path: target.word };
    } else {
      flush();
      connector = t.op;
    }
  }
  flush();
  return io.status;
}

/**
 * Runs `argv` in the guest. `files` is the guest's file map (changed in place);
 * returns {code, stdout, stderr, changed}.
 */
export function runGuest(argv, files, stdin = '') {
  let stdout = '';
  let stderr = '';
  let changed = false;
  const io = {
    files,
    status: 0,
    out: (s) => (stdout += s),
    err: (s) => (stderr += s),
    write: (p, c) => {
      files[p] = c;
      changed = true;
    },
    remove: (p) => {
      if (files[p] !== undefined) changed = true;
      delete files[p];
    },
  };
  let code;
  try {
    if ((argv[0] === 'sh' || argv[0] === '/bin/sh' || argv[0] === 'bash') && argv[1] === '-c') {
      code = script(argv[2] ?? '', argv.length > 3 ? argv.slice(3) : [argv[0]], io, stdin);
    } else if (argv.length === 0) {
      code = script(stdin, ['sh'], io, '');
    } else code = simple(argv, io, stdin);
  } catch (e) {
    if (e && typeof e.exitStatus === 'number') code = e.exitStatus;
    else {
      stderr += `sh: 1: ${e instanceof Error ? e.message : String(e)}\n`;
      code = 2;
    }
  }
  return { code, stdout, stderr, changed };
}
