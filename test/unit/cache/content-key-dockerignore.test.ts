import { describe, expect, it } from 'vitest';
import { cleanPath, compileGlob, DockerIgnore } from '../../../agent/src/cache/dockerignore.js';

function matches(pattern: string, name: string): boolean {
  const re = compileGlob(pattern);
  if (re === null) throw new Error(`bad pattern ${pattern}`);
  return re.test(name);
}

describe('compileGlob (Go filepath.Match)', () => {
  it('matches * and ? within one segment', () => {
    expect(matches('*.txt', 'a.txt')).toBe(true);
    expect(matches('*.txt', 'dir/a.txt')).toBe(false);
    expect(matches('a?c', 'abc')).toBe(true);
    expect(matches('a?c', 'a/c')).toBe(false);
    expect(matches('*/*.sh', 'scripts/a.sh')).toBe(true);
  });

  it('reads classes, negation, ranges and escapes', () => {
    expect(matches('[a-c].txt', 'b.txt')).toBe(true);
    expect(matches('[a-c].txt', 'd.txt')).toBe(false);
    expect(matches('[^a-c].txt', 'd.txt')).toBe(true);
    expect(matches('[\\]x]', ']')).toBe(true);
    expect(matches('\\*.txt', '*.txt')).toBe(true);
    expect(matches('\\*.txt', 'a.txt')).toBe(false);
  });

  it('treats RegExp metacharacters literally', () => {
    expect(matches('c++(1).{x}|$', 'c++(1).{x}|$')).toBe(true);
    expect(matches('a.b', 'axb')).toBe(false);
  });

  it('refuses what Go refuses', () => {
    for (const bad of ['[', '[]', 'a\\', '[a-', '[-a]']) expect(compileGlob(bad)).toBeNull();
  });
});

describe('cleanPath (Go filepath.Clean)', () => {
  it('cleans like Go', () => {
    expect(cleanPath('./a//b/../c/')).toBe('a/c');
    expect(cleanPath('')).toBe('.');
    expect(cleanPath('a/../..')).toBe('..');
    expect(cleanPath('/../a')).toBe('/a');
  });
});

describe('DockerIgnore', () => {
  it('ignores by pattern and by parent directory', () => {
    const ig = new DockerIgnore('node_modules\nscripts/*.tmp\n*.md\n');
    expect(ig.ignores('node_modules/x/index.js')).toBe(true);
    expect(ig.ignores('scripts/x.tmp')).toBe(true);
    expect(ig.ignores('scripts/sub/x.tmp')).toBe(false);
    expect(ig.ignores('README.md')).toBe(true);
    expect(ig.ignores('docs/guide.md')).toBe(false); // `*` stays in one segment
  });

  it('matches ** across any number of segments', () => {
    const ig = new DockerIgnore('**/*.log\nbuild/**\na/**/z\n');
    expect(ig.ignores('x.log')).toBe(true);
    expect(ig.ignores('deep/er/x.log')).toBe(true);
    expect(ig.ignores('build/out/bin')).toBe(true);
    expect(ig.ignores('a/z')).toBe(true);
    expect(ig.ignores('a/b/c/z')).toBe(true);
    expect(ig.ignores('b/z')).toBe(false);
  });

  it('lets the last matching rule win, with ! exceptions', () => {
    const ig = new DockerIgnore('*.md\n!README.md\nREADME.md\n!docs\n');
    expect(ig.ignores('README.md')).toBe(true);
    const keep = new DockerIgnore('docs\n!docs/keep.txt\n');
    expect(keep.ignores('docs/drop.txt')).toBe(true);
    expect(keep.ignores('docs/keep.txt')).toBe(false);
    expect(keep.hasExceptions).toBe(true);
  });

  it('strips leading / and ./, cleans patterns, skips comments and blanks', () => {
    const ig = new DockerIgnore('\uFEFF# comment\n\n  /dist  \n./tmp/\nx/../secret\n #notacomment\n');
    expect(ig.ignores('dist/a.js')).toBe(true);
    expect(ig.ignores('tmp/a')).toBe(true);
    expect(ig.ignores('secret')).toBe(true);
    expect(ig.ignores('#notacomment')).toBe(true);
    expect(ig.ignores('# comment')).toBe(false);
    expect(ig.ignores('src/a.js')).toBe(false);
  });

  it('is case-sensitive, like Linux', () => {
    expect(new DockerIgnore('Secret.txt').ignores('secret.txt')).toBe(false);
  });
});
