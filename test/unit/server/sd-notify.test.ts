import { describe, expect, it } from 'vitest';
import { sdNotifier, watchdogIntervalMs } from '../../../agent/src/server/sd-notify.js';

describe('sd-notify', () => {
  it('asks for pings at half the watchdog timeout, only for this process', () => {
    expect(watchdogIntervalMs({ WATCHDOG_USEC: '60000000' }, 42)).toBe(30_000);
    expect(watchdogIntervalMs({ WATCHDOG_USEC: '60000000', WATCHDOG_PID: '42' }, 42)).toBe(30_000);
    expect(watchdogIntervalMs({ WATCHDOG_USEC: '60000000', WATCHDOG_PID: '7' }, 42)).toBeNull();
    expect(watchdogIntervalMs({}, 42)).toBeNull();
    expect(watchdogIntervalMs({ WATCHDOG_USEC: 'soon' }, 42)).toBeNull();
    expect(watchdogIntervalMs({ WATCHDOG_USEC: '0' }, 42)).toBeNull();
    // never a busy loop
    expect(watchdogIntervalMs({ WATCHDOG_USEC: '10' }, 42)).toBe(50);
  });

  it('without NOTIFY_SOCKET sends nothing and starts no timer', async () => {
    const warnings: string[] = [];
    const n = sdNotifier({ env: { WATCHDOG_USEC: '1000' }, command: '/nonexistent/systemd-notify', warn: (m) => warnings.push(m) });
    expect(n.enabled).toBe(false);
    await n.ready('serving');
    await n.stopping('draining');
    n.startWatchdog()();
    expect(warnings).toEqual([]);
  });

  it('a systemd-notify that cannot run is told once per kind, in words naming it', async () => {
    const warnings: string[] = [];
    const n = sdNotifier({ env: { NOTIFY_SOCKET: '/run/nothing-here' }, command: '/nonexistent/systemd-notify', warn: (m) => warnings.push(m) });
    await n.ready('serving');
    await n.ready('serving');
    await n.status('still');
    expect(warnings).toHaveLength(2);
    expect(warnings[0]).toMatch(/^could not tell systemd READY \(\/nonexistent\/systemd-notify\): /);
    expect(warnings[1]).toMatch(/^could not tell systemd STATUS/);
  });

  it('a real systemd-notify with no one listening fails visibly, not silently', async () => {
    const warnings: string[] = [];
    const n = sdNotifier({ env: { NOTIFY_SOCKET: '/run/warmstart-no-such-notify.sock', PATH: process.env.PATH }, warn: (m) => warnings.push(m) });
    await n.ready('serving');
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/could not tell systemd READY/);
  });
});
