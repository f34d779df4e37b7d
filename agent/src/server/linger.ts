import type { Socket } from 'node:net';

/** How long a closing connection keeps reading what the client still sends. */
export const LINGER_MS = 5_000;

type Closable = Socket & { destroySoon?: () => void };

/**
 * A refusal sent before the request's body was read (401, 413, 415 ...)
 * closes the connection, and node closes it at once: the kernel then resets
 * it because of the unread body, and a client still sending (a 4 MiB
 * upload) loses the answer it was sent (EPIPE, "other side closed") instead
 * of reading the 413. So the close lingers, as in nginx: the answer goes
 * out, our side is shut, and what the client still sends is read and
 * dropped until it closes its side or `ms` pass.
 *
 * Node closes through `socket.destroySoon()` once the answer is written
 * (only when the connection is not kept alive; a kept-alive one has its
 * body drained by node itself), so this replaces that one call on this
 * one socket.
 */
export function lingerOnClose(socket: Socket, ms = LINGER_MS): void {
  const s = socket as Closable;
  if (typeof s.destroySoon !== 'function' || s.destroyed) return;
  s.destroySoon = function lingeringClose(this: Closable): void {
    // Destroyed only once the answer is flushed: end() sends it, then our FIN.
    const close = (): void => {
      if (this.writableFinished) this.destroy();
      else this.once('finish', () => this.destroy());
    };
    if (this.writable) this.end();
    if (this.readableEnded) return close();
    const timer = setTimeout(() => this.destroy(), ms);
    timer.unref();
    this.once('end', close);
    this.once('close', () => clearTimeout(timer));
    // Reading on drops the rest (node's parser hands it to a request nobody reads).
    this.resume();
  };
}
