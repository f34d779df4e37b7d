import { describe, expect, it } from 'vitest';
import { dockerfileSources } from '../../../agent/src/cache/dockerfile-sources.js';

function sources(text: string, args: Record<string, unknown> = {}): string[] {
  const out = dockerfileSources(text, args);
  expect(out.wholeContext).toBeNull();
  return out.sources;
}

function whole(text: string, args: Record<string, unknown> = {}): string {
  const out = dockerfileSources(text, args);
  expect(out.wholeContext).not.toBeNull();
  return out.wholeContext!;
}

describe('dockerfileSources', () => {
  it('reads COPY and ADD sources, with flags, in both forms', () => {
    const text = [
      'FROM debian',
      'COPY --chown=1000:1000 --chmod=755 --link a.txt b/ /dest/',
      'copy ["c d.txt", "e.txt", "/dest/"]',
      'ADD --checksum=sha256:abc f.tar.gz /opt/',
    ].join('\n');
    expect(sources(text)).toEqual(['a.txt', 'b/', 'c d.txt', 'e.txt', 'f.tar.gz']);
  });

  it('skips other stages, images, URLs, git sources and heredocs', () => {
    const text = [
      'FROM golang AS builder',
      'COPY --from=builder /out /out',
      'COPY --from=alpine:3 /etc/os-release /x',
      'ADD https://example.com/x.tgz /opt/',
      'ADD git@github.com:o/r.git /src',
      'COPY <<EOF /etc/motd',
      'COPY not-a-source /x',
      'EOF',
      'COPY real.txt /x',
    ].join('\n');
    expect(sources(text)).toEqual(['real.txt']);
  });

  it('joins continuations, drops comments inside them, and honours # escape=', () => {
    expect(sources('FROM debian\nCOPY a.txt \\\n# a comment\n\n  b.txt /d/\n')).toEqual(['a.txt', 'b.txt']);
    expect(sources('# escape=`\nFROM windows\nCOPY a.txt `\n  b.txt C:\\d\\\n')).toEqual(['a.txt', 'b.txt']);
  });

  it('skips RUN heredoc bodies', () => {
    const text = 'FROM debian\nRUN <<-SCRIPT bash\n\tCOPY fake /x\n\tSCRIPT\nCOPY real /x\n';
    expect(sources(text)).toEqual(['real']);
  });

  it('takes RUN bind mounts from the context, not cache mounts or other stages', () => {
    const text = [
      'FROM debian',
      'RUN --mount=type=bind,source=requirements.txt,target=/r.txt --mount=type=cache,target=/root/.cache pip install',
      'RUN --mount=target=/src make',
      'RUN --mount=type=bind,from=builder,source=/out,target=/o true',
      'RUN --mount=type=secret,id=x cat /run/secrets/x',
    ].join('\n');
    expect(sources(text)).toEqual(['requirements.txt', '.']);
  });

  it('expands ARG defaults, build args and ENV', () => {
    const text = [
      'ARG DIR=app',
      'FROM debian',
      'ARG DIR',
      'ARG FILE="requirements.txt"',
      'ENV CONF_DIR=/conf OTHER=x',
      'ENV LEGACY legacy.txt',
      'COPY $DIR/${FILE} ${CONF_DIR}/a $LEGACY /dest/',
    ].join('\n');
    expect(sources(text)).toEqual(['app/requirements.txt', '/conf/a', 'legacy.txt']);
    expect(sources(text, { DIR: 'src', FILE: 'deps.txt' })).toEqual(['src/deps.txt', '/conf/a', 'legacy.txt']);
  });

  it('ignores ONBUILD, which does not run in this build', () => {
    expect(sources('FROM debian\nONBUILD COPY . /app\n')).toEqual([]);
  });

  it('falls back to the whole context when a source is not known before the build', () => {
    expect(whole('FROM node\nCOPY $FROM_BASE_IMAGE /x\n')).toContain('$FROM_BASE_IMAGE');
    expect(whole('ARG X\nFROM debian\nARG X\nCOPY $X /x\n')).toContain('$X');
    expect(whole('FROM debian\nARG X=a\nCOPY ${X:-b} /x\n')).toBeTruthy();
    expect(whole('FROM debian\nCOPY "a b" /x\n')).toContain('quotes');
    expect(whole('FROM debian\nARG X=a\nCOPY $X /x\n', { X: '${localEnv:X}' })).toBeTruthy();
    expect(whole('FROM debian\nRUN --mount=type=bind,source="a b",target=/x true\n')).toContain('--mount');
    // A global ARG is not in scope in a stage until declared there.
    expect(whole('ARG X=a\nFROM debian\nCOPY $X /x\n')).toBeTruthy();
  });
});
