import { describe, expect, it } from 'vitest';
import { redactingSink, SecretSet, type WorkspaceEvent } from '../../../agent/src/events/events.js';
import { textOf } from '../../support/events.js';

describe('redactingSink', () => {
  it('scrubs secrets added before and after the sink was made, and leaves short strings alone', () => {
    const seen: WorkspaceEvent[] = [];
    const secrets = new SecretSet();
    secrets.add('ghs_abcdef123456', undefined, null, 'abc');
    const sink = redactingSink({ emit: (e) => seen.push(e) }, secrets);
    const ev = (text: string): WorkspaceEvent => ({ ts: 't', workspaceId: 'w', type: 'log', text });
    sink.emit(ev('token ghs_abcdef123456 and abc'));
    secrets.add('app-token-9876543210');
    sink.emit(ev('pushed with app-token-9876543210, twice app-token-9876543210'));
    sink.emit({ ts: 't', workspaceId: 'w', type: 'phase-start', phase: 'clone' });
    expect(seen.map(textOf)).toEqual(['token *** and abc', 'pushed with ***, twice ***', undefined]);
  });
});
