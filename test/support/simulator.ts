/**
 * What the tests against the WhatsApp Web simulator (test/fakes/wa-simulator) share: a personal channel
 * linked by scanning its QR with a simulated phone, and a contact paired by sending the code from theirs.
 * They work through any Wharf's API (in-process, spawned or a cluster node).
 */
import { expect } from 'vitest';
import type { SimUser, WaSimulator } from '../fakes/wa-simulator/server.js';
import type { ApiCall } from './api-client.js';
import { waitFor } from './cloud.js';

/** Any Wharf whose API the helpers call. */
export interface HasApi {
  api: ApiCall;
}

/** The simulator tests' patience: a personal session takes seconds to link, more on a loaded machine. */
export const SIM_WAIT_MS = 30_000;

/** cloud.ts's `waitFor` with `fn` first and a file's own patience: `const waitFor = pollWith(30_000)`. */
export function pollWith(defaultMs: number) {
  return <T>(
    fn: () => Promise<T | null | undefined | false> | T | null | undefined | false,
    what: string,
    timeoutMs = defaultMs,
  ): Promise<T> => waitFor(what, fn, timeoutMs);
}

/** A channel as `GET /api/channels/:id` answers it. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- tests read loosely typed JSON answers
export const channelOf = async (on: HasApi, id: string): Promise<any> =>
  (await on.api('GET', `/api/channels/${id}`)).data;

/** Creates a personal channel in `space` through `on`, scans its QR with `owner`'s phone; resolves with its id once connected. */
export async function linkChannel(
  sim: WaSimulator,
  on: HasApi,
  owner: SimUser,
  space: string,
  timeoutMs = SIM_WAIT_MS,
): Promise<string> {
  const created = await on.api('POST', '/api/channels', { provider: 'whatsapp_user', agent: 'echo', space });
  expect(created.status).toBe(201);
  const id: string = created.data.id;
  const qr = await waitFor(
    'a QR through the API',
    async () => {
      const r = await on.api('GET', `/api/channels/${id}/qr`);
      return r.status === 200 ? (r.data as { qr: string }) : null;
    },
    timeoutMs,
  );
  await sim.scan(qr.qr, owner);
  await waitFor('connected', async () => (await channelOf(on, id)).status === 'connected', timeoutMs);
  return id;
}

/** The contact sends the channel's pairing code from its phone and becomes a paired address. */
export async function pairContact(
  sim: WaSimulator,
  on: HasApi,
  id: string,
  owner: SimUser,
  contact: SimUser,
  timeoutMs = SIM_WAIT_MS,
): Promise<void> {
  const pairing = await on.api('POST', `/api/channels/${id}/pair`);
  expect(pairing.status).toBe(200);
  sim.sendText(contact, owner, pairing.data.code);
  await waitFor(
    'the contact paired',
    async () =>
      ((await channelOf(on, id)).pairedAddresses as Array<{ address: string }>).some(
        (p) => p.address === `+${contact.pn}`,
      ),
    timeoutMs,
  );
}
