/**
 * Readiness, status and watchdog pings for systemd (`Type=notify`, see
 * deploy/warmstart.service), without a native addon.
 *
 * The protocol is one datagram per message on the AF_UNIX socket systemd
 * names in $NOTIFY_SOCKET (sd_notify(3)). Node's `dgram` speaks only UDP, so
 * the datagram is sent by systemd-notify(1), which every systemd node has.
 * systemd attributes a message to a unit by the sender's PID; a
 * systemd-notify that has already exited when systemd reads the message can
 * no longer be attributed (systemd < 254 has no way around that race). So
 * each message is sent with `--pid=<our pid>`: systemd-notify then puts the
 * agent's own PID in the message's credentials (allowed for root, as the
 * unit runs it), and the message counts as the main process's. Where the
 * kernel refuses that (not root), systemd-notify sends it as its own, and
 * the unit's `NotifyAccess=all` still accepts it, race permitting.
 *
 * With no $NOTIFY_SOCKET (not under systemd, or not `Type=notify`) every
 * call is a no-op.
 */
import { execFile } from 'node:child_process';

export interface SdNotifier {
  /** READY=1, with a status line. Once the API answers. */
  ready(status: string): Promise<void>;
  /** STATUS=..., shown by `systemctl status`. */
  status(status: string): Promise<void>;
  /** STOPPING=1: the agent is winding down (systemd then stops expecting watchdog pings to keep it alive). */
  stopping(status: string): Promise<void>;
  /** Starts the WATCHDOG=1 pings at half of $WATCHDOG_USEC, when systemd asks for them; returns the stopper. */
  startWatchdog(): () => void;
  /** Whether messages go anywhere. */
  readonly enabled: boolean;
}

export interface SdNotifyOptions {
  env: NodeJS.ProcessEnv;
  pid?: number;
  /** The systemd-notify binary (default: found on PATH). */
  command?: string;
  /** Where a message that could not be sent is told (once per kind). */
  warn: (message: string) => void;
}

/** How long one systemd-notify may take before it is abandoned. */
const SEND_TIMEOUT_MS = 5_000;

/** The watchdog interval systemd asks for, in ms, or null: $WATCHDOG_USEC, for this process only ($WATCHDOG_PID). */
export function watchdogIntervalMs(env: NodeJS.ProcessEnv, pid: number): number | null {
  const usec = Number(env.WATCHDOG_USEC);
  if (!env.WATCHDOG_USEC || !Number.isSafeInteger(usec) || usec <= 0) return null;
  if (env.WATCHDOG_PID && Number(env.WATCHDOG_PID) !== pid) return null;
  // Half the timeout, as sd_watchdog_enabled(3) advises; never a busy loop.
  return Math.max(50, Math.floor(usec / 2_000));
}

/** A status line carries no newline (the protocol is one VARIABLE=value per line). */
function oneLine(text: string): string {
  return text.replace(/[\r\n]+/g, ' ').slice(0, 200);
}

export function sdNotifier(opts: SdNotifyOptions): SdNotifier {
  const pid = opts.pid ?? process.pid;
  const enabled = Boolean(opts.env.NOTIFY_SOCKET);
  const command = opts.command ?? 'systemd-notify';
  const warned = new Set<string>();
  // systemd-notify reads NOTIFY_SOCKET from its environment; nothing else of the agent's is passed.
  const childEnv = { PATH: opts.env.PATH ?? '/usr/local/bin:/usr/bin:/bin', NOTIFY_SOCKET: opts.env.NOTIFY_SOCKET ?? '' };

  const send = (kind: string, fields: string[]): Promise<void> =>
    !enabled
      ? Promise.resolve()
      : new Promise((resolve) => {
          execFile(command, [`--pid=${pid}`, ...fields], { env: childEnv, timeout: SEND_TIMEOUT_MS }, (err, _stdout, stderr) => {
            if (err && !warned.has(kind)) {
              warned.add(kind);
              const why = String(stderr).trim() || err.message;
              opts.warn(`could not tell systemd ${kind} (${command}): ${oneLine(why)}`);
            }
            resolve();
          });
        });

  return {
    enabled,
    ready: (status) => send('READY', ['READY=1', `STATUS=${oneLine(status)}`]),
    status: (status) => send('STATUS', [`STATUS=${oneLine(status)}`]),
    stopping: (status) => send('STOPPING', ['STOPPING=1', `STATUS=${oneLine(status)}`]),
    startWatchdog: () => {
      const every = enabled ? watchdogIntervalMs(opts.env, pid) : null;
      if (every === null) return () => undefined;
      // A ping is sent only when this timer fires: an event loop held for longer than the
      // watchdog's timeout misses its pings, and systemd restarts the agent.
      const timer = setInterval(() => void send('WATCHDOG', ['WATCHDOG=1']), every);
      timer.unref();
      return () => clearInterval(timer);
    },
  };
}
