/**
 * Keeps Signal session secrets out of the process output.
 *
 * libsignal 6 (the Signal implementation Baileys uses) prints whole `SessionEntry` objects through the
 * global console on routine events — "Closing session:", "Opening session:", "Removing old closed
 * session:" — and a `SessionEntry` holds the ratchet's private key, the root key and the chain keys
 * (WhiskeySockets/Baileys#887, #888, #2098). Anything that reads the process output (a log shipper, a
 * terminal) would then hold keys that decrypt the account's messages.
 *
 * The guard wraps the console once per process: a call that carries a `SessionEntry` is not printed; its
 * text goes to the logger at debug level with the entry replaced by a marker. Every other console call
 * passes through untouched. Detection is by class (libsignal's own `SessionEntry`), not by matching text,
 * so a reworded message upstream is still caught.
 */
import { createRequire } from 'node:module';
import type { Logger } from '../logger.js';

interface SessionRecordModule {
  createEntry(): object;
}

const require = createRequire(import.meta.url);
// Baileys imports `libsignal` from its own dependency tree; this resolves to the same module instance.
const SessionRecord = require('libsignal/src/session_record.js') as SessionRecordModule;
/** libsignal's `SessionEntry` class (not exported by the package; reached through an entry it creates). */
const SessionEntry = Object.getPrototypeOf(SessionRecord.createEntry()).constructor as abstract new () => object;

const METHODS = ['log', 'info', 'warn', 'error', 'debug'] as const;
type ConsoleMethod = (typeof METHODS)[number];

/** The marker that replaces a session entry in the logged text. */
export const REDACTED_SESSION = '[Signal session redacted]';

let installed: { restore(): void } | null = null;

const carriesSession = (args: unknown[]): boolean => args.some((arg) => arg instanceof SessionEntry);

/**
 * Installs the guard (once per process; later calls keep the first logger). Returns a function that
 * restores the console as it was, for tests.
 */
export function installSignalLogGuard(log: Logger): () => void {
  if (installed) return installed.restore;
  const originals = new Map<ConsoleMethod, (...args: unknown[]) => void>();
  const glog = log.child({ component: 'libsignal' });
  for (const method of METHODS) {
    const original = console[method] as (...args: unknown[]) => void;
    originals.set(method, original);
    console[method] = (...args: unknown[]): void => {
      if (!carriesSession(args)) {
        original.apply(console, args);
        return;
      }
      const text = args
        .map((arg) => (arg instanceof SessionEntry ? REDACTED_SESSION : typeof arg === 'string' ? arg : typeof arg))
        .join(' ');
      glog.debug(text);
    };
  }
  installed = {
    restore(): void {
      for (const [method, original] of originals) console[method] = original;
      installed = null;
    },
  };
  return installed.restore;
}
