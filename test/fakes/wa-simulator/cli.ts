/**
 * The WhatsApp Web simulator as a program, to try Wharf's personal-account flow without a phone:
 *
 *   npm run build && node dist/test/fakes/wa-simulator/cli.js [--port=7999] [--key=./wa-sim-root.key]
 *
 * It prints the two settings to start Wharf with (`WHARF_WA_URL`, `WHARF_WA_CERT_ROOT`) and serves a small
 * control API on the next port (loopback only) that plays the phones:
 *
 *   POST /scan   {qr, phone, name?}        the phone `phone` scans the QR Wharf shows (links the device)
 *   POST /send   {from, to, text, name?}   `from` writes `text` to the account `to` (Signal-encrypted)
 *   POST /group  {creator, members, subject, addressing?}
 *                                          `creator` makes a group with `members` (phone numbers); → {jid}
 *   POST /group/send {from, group, text}   a member writes to the group (sender keys)
 *   GET  /inbox/:phone                     what that phone received (decrypted)
 *   POST /logout {phone}                   the phone logs all its linked devices out
 *
 * The root key is kept in `--key` (created on first start) so Wharf's WHARF_WA_CERT_ROOT stays valid across
 * restarts of the simulator; accounts and linked devices live in memory only.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createCertAuthority, type CertAuthority } from './noise.js';
import { startWaSimulator, type SimUser, type WaSimulator } from './server.js';
import { curve } from './signal-crypto.js';

const arg = (name: string, fallback: string): string =>
  process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3) ?? fallback;

/** A certificate authority whose root key survives restarts (kept in `file`, mode 0600). */
function persistentAuthority(file: string): CertAuthority {
  const ca = createCertAuthority();
  if (existsSync(file)) {
    const { public: pub, private: priv } = JSON.parse(readFileSync(file, 'utf8')) as Record<string, string>;
    ca.root.public = Buffer.from(pub, 'base64');
    ca.root.private = Buffer.from(priv, 'base64');
  } else {
    const kp = curve.generateKeyPair();
    ca.root.public = kp.public;
    ca.root.private = kp.private;
    const body = { public: kp.public.toString('base64'), private: kp.private.toString('base64') };
    writeFileSync(file, JSON.stringify(body), { mode: 0o600 });
  }
  return ca;
}

async function readJson(req: IncomingMessage): Promise<Record<string, unknown>> {
  let body = '';
  for await (const chunk of req) body += String(chunk);
  return body ? (JSON.parse(body) as Record<string, unknown>) : {};
}

function reply(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
}

async function main(): Promise<void> {
  const port = Number(arg('port', '7999'));
  const ca = persistentAuthority(arg('key', './wa-sim-root.key'));
  const sim: WaSimulator = await startWaSimulator({ ca, port });
  const user = (phone: unknown, name?: unknown): SimUser => {
    const digits = String(phone ?? '').replace(/\D/g, '');
    if (!/^\d{5,20}$/.test(digits)) throw new Error('phone must be a phone number such as +15550001111');
    return sim.user(digits) ?? sim.addUser(digits, typeof name === 'string' ? name : undefined);
  };
  const control = createServer((req, res) => {
    void (async () => {
      try {
        const body = req.method === 'POST' ? await readJson(req) : {};
        if (req.method === 'POST' && req.url === '/scan') {
          const device = await sim.scan(String(body.qr ?? ''), user(body.phone, body.name));
          return reply(res, 200, { linked: `+${device.user.pn}`, device: device.device });
        }
        if (req.method === 'POST' && req.url === '/send') {
          const id = sim.sendText(user(body.from, body.name), user(body.to), String(body.text ?? ''));
          return reply(res, 202, { id });
        }
        if (req.method === 'POST' && req.url === '/group') {
          if (!Array.isArray(body.members)) throw new Error('members must be a list of phone numbers');
          const addressing = body.addressing === 'lid' ? 'lid' : 'pn';
          const members = body.members.map((m) => user(m));
          const group = sim.createGroup(String(body.subject ?? 'Group'), user(body.creator), members, { addressing });
          return reply(res, 201, { jid: group.jid, members: group.members.map((m) => `+${m.pn}`) });
        }
        if (req.method === 'POST' && req.url === '/group/send') {
          const group = sim.group(String(body.group ?? ''));
          if (!group) throw new Error(`no such group: ${String(body.group)}`);
          const id = await sim.sendGroupText(user(body.from), group, String(body.text ?? ''));
          return reply(res, 202, { id });
        }
        if (req.method === 'GET' && req.url?.startsWith('/inbox/')) {
          const u = user(decodeURIComponent(req.url.slice('/inbox/'.length)));
          return reply(
            res,
            200,
            u.inbox.map((m) => ({
              id: m.id,
              from: `+${m.from}`,
              text: m.text,
              ...(m.group ? { group: m.group } : {}),
            })),
          );
        }
        if (req.method === 'POST' && req.url === '/logout') {
          const devices = sim.linkedDevices(user(body.phone));
          for (const d of devices) sim.removeDevice(d);
          return reply(res, 200, { loggedOut: devices.length });
        }
        reply(res, 404, {
          error: {
            code: 'not_found',
            message: 'POST /scan, POST /send, POST /group, POST /group/send, GET /inbox/:phone, POST /logout',
          },
        });
      } catch (err) {
        reply(res, 400, { error: { code: 'bad_request', message: (err as Error).message } });
      }
    })();
  });
  await new Promise<void>((r) => control.listen(port + 1, '127.0.0.1', () => r()));
  process.stdout.write(
    [
      'WhatsApp Web simulator (not WhatsApp: for trying Wharf without a phone)',
      `  WHARF_WA_URL=${sim.url}`,
      `  WHARF_WA_CERT_ROOT=${sim.certRoot}`,
      `  control API: http://127.0.0.1:${port + 1} (POST /scan, POST /send, POST /group, POST /group/send, GET /inbox/:phone, POST /logout)`,
      '',
    ].join('\n'),
  );
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      control.close();
      void sim.stop().then(() => process.exit(0));
    });
  }
}

await main();
