/**
 * libsignal prints whole Signal sessions (ratchet private key, root key, chain keys) through the console when
 * it closes, opens or prunes one; the guard keeps those objects out of the process output and logs the event
 * without them, while every other console call still prints.
 */
import { randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { installSignalLogGuard, REDACTED_SESSION } from '../lib/baileys/signal-log-guard.js';

interface Entry {
  indexInfo: Record<string, unknown>;
  currentRatchet?: Record<string, unknown>;
}
interface SessionRecordClass {
  new (): { setSession(e: Entry): void; closeSession(e: Entry): void; openSession(e: Entry): void };
  createEntry(): Entry;
}
const SessionRecord = createRequire(import.meta.url)('libsignal/src/session_record.js') as SessionRecordClass;

/** A session as libsignal keeps it, with a private key we can look for in the output. */
function sessionWithSecret(secret: Buffer): Entry {
  const entry = SessionRecord.createEntry();
  entry.indexInfo = {
    baseKey: randomBytes(33),
    baseKeyType: 1,
    closed: -1,
    used: 1,
    created: 1,
    remoteIdentityKey: randomBytes(33),
  };
  entry.currentRatchet = {
    ephemeralKeyPair: { pubKey: randomBytes(33), privKey: secret },
    rootKey: randomBytes(32),
    previousCounter: 0,
  };
  return entry;
}

function captureLogger(): { log: pino.Logger; lines: string[] } {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk, _enc, done) {
      lines.push(String(chunk));
      done();
    },
  });
  return { log: pino({ level: 'debug' }, sink), lines };
}

let restore: (() => void) | undefined;
afterEach(() => {
  restore?.();
  restore = undefined;
  vi.restoreAllMocks();
});

describe('Signal session log guard', () => {
  it('keeps a closed and a reopened session out of the console and logs the event without its keys', () => {
    const printed: unknown[][] = [];
    for (const m of ['info', 'warn', 'log'] as const)
      vi.spyOn(console, m).mockImplementation((...a: unknown[]) => void printed.push(a));
    const { log, lines } = captureLogger();
    restore = installSignalLogGuard(log);

    const secret = randomBytes(32);
    const record = new SessionRecord();
    const entry = sessionWithSecret(secret);
    record.setSession(entry);
    record.closeSession(entry); // libsignal: console.info("Closing session:", session)
    record.openSession(entry); // console.info("Opening session:", session)
    record.closeSession(entry);
    record.closeSession(entry); // console.warn("Session already closed", session)

    expect(entry.indexInfo.closed).not.toBe(-1); // libsignal's own behaviour is unchanged
    expect(printed).toEqual([]);
    const text = lines.join('');
    expect(text).toContain(`Closing session: ${REDACTED_SESSION}`);
    expect(text).toContain(`Opening session: ${REDACTED_SESSION}`);
    expect(text).toContain(`Session already closed ${REDACTED_SESSION}`);
    expect(text).not.toContain(secret.toString('hex'));
    expect(text).not.toContain(secret.toString('base64'));
    expect(text).not.toMatch(/privKey|rootKey/);
  });

  it('lets every other console call through unchanged, and is installed once', () => {
    const printed: unknown[][] = [];
    vi.spyOn(console, 'warn').mockImplementation((...a: unknown[]) => void printed.push(a));
    const { log } = captureLogger();
    restore = installSignalLogGuard(log);
    expect(installSignalLogGuard(log)).toBe(restore);
    console.warn('Closing open session in favor of incoming prekey bundle');
    console.warn('other', { a: 1 });
    expect(printed).toEqual([['Closing open session in favor of incoming prekey bundle'], ['other', { a: 1 }]]);
  });
});
