/**
 * The operators' console in real Chromium (Debian's, driven by playwright-core) against the real product:
 * the in-process Wharf (real Temporal dev server, PGlite store, worker, API), the fake Graph API for Meta
 * and the injected fake Baileys socket for WhatsApp Web. Controls are found by role and accessible name,
 * the way an operator (or a screen reader) finds them.
 *
 * With CONSOLE_SCREENSHOTS=<dir> set, each page is also saved as PNG at 1280 px and 390 px (docs/console/).
 */
import { mkdirSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createFakeBaileys, type FakeBaileys } from './fakes/baileys-socket.js';
import { inboundPayload, startFakeGraph, type FakeGraph } from './fakes/graph-server.js';
import { ensureConsoleBuilt, launchBrowser } from './support/browser.js';
import {
  bare,
  cloudChannel,
  digits,
  phone,
  postWebhook,
  uid,
  verify,
  waitFor,
  wamid,
  WAIT_MS,
} from './support/cloud.js';
import { startWharf, type TestWharf } from './support/wharf.js';

let w: TestWharf;
let graph: FakeGraph;
let baileys: FakeBaileys;
let browser: Browser;
let evil: Server;
let evilUrl: string;
// The page a hostile site serves: a form that would disconnect a channel if the browser's cookie sufficed.
let evilForm = '';

const shots = process.env.CONSOLE_SCREENSHOTS;
async function shoot(page: Page, name: string, fullPage = true): Promise<void> {
  if (!shots) return;
  mkdirSync(shots, { recursive: true });
  // A page's heading shows before its lists have loaded; the picture is of the page as an operator sees it.
  await page.waitForTimeout(400);
  await page.screenshot({ path: join(shots, `${name}.png`), fullPage });
}

beforeAll(async () => {
  ensureConsoleBuilt();
  graph = await startFakeGraph();
  baileys = createFakeBaileys();
  w = await startWharf({ graphUrl: graph.url, makeSocket: (config) => baileys.makeSocket(config) });
  browser = await launchBrowser();
  evil = createServer((_req, res) => res.writeHead(200, { 'content-type': 'text/html' }).end(evilForm));
  await new Promise<void>((resolve) => evil.listen(0, '127.0.0.1', resolve));
  const addr = evil.address();
  evilUrl = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`;
});

afterAll(async () => {
  await browser?.close();
  await new Promise<void>((resolve) => (evil ? evil.close(() => resolve()) : resolve()));
  await w?.close({ purge: true });
  await graph?.close();
});

/** A fresh browser context (its own cookies), logged in through the login page. */
async function loggedIn(viewport = { width: 1280, height: 900 }): Promise<{ context: BrowserContext; page: Page }> {
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  await page.goto(w.url);
  await page.getByLabel('Admin token').fill(w.token);
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.getByRole('heading', { name: 'Channels' }).waitFor();
  return { context, page };
}

describe('console: login', () => {
  it('a fresh browser sees only the login; a wrong token is refused; the token logs in; Log out ends the session', async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    try {
      await page.goto(w.url);
      await expect.poll(() => page.getByLabel('Admin token').isVisible()).toBe(true);
      expect(await page.getByRole('heading', { name: 'Channels' }).count()).toBe(0);
      // The API behind it answers nothing without the session either.
      expect((await page.request.get(`${w.url}/api/channels`)).status()).toBe(401);
      await shoot(page, 'login');

      await page.getByLabel('Admin token').fill('not-the-token');
      await page.getByRole('button', { name: 'Log in' }).click();
      await page.getByText('That is not the admin token.').waitFor();

      await page.getByLabel('Admin token').fill(w.token);
      await page.getByRole('button', { name: 'Log in' }).click();
      await page.getByRole('heading', { name: 'Channels' }).waitFor();
      const cookie = (await context.cookies()).find((c) => c.name === 'wharf_session');
      expect(cookie).toMatchObject({ httpOnly: true, sameSite: 'Strict' });
      expect(cookie?.value).not.toContain(w.token);
      expect((await page.request.get(`${w.url}/api/channels`)).status()).toBe(200);

      await page.getByRole('button', { name: 'Log out' }).click();
      await page.getByLabel('Admin token').waitFor();
      expect((await page.request.get(`${w.url}/api/channels`)).status()).toBe(401);
      // The bearer token keeps working for scripts.
      expect((await w.api('GET', '/api/channels')).status).toBe(200);
    } finally {
      await context.close();
    }
  });
});

describe('console: Cloud API channel end to end', () => {
  it('Add channel → Config with the credential picker → Save → Webhook URL → verified live → Pair → paired live → echo in Messages', async () => {
    const { context, page } = await loggedIn();
    await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: w.url });
    try {
      // Meta's side: a token and a phone number the fake Graph API knows.
      const phoneNumberId = digits(15);
      const wabaId = digits(15);
      const display = `+1 555-${digits(3)}-${digits(4)}`;
      const secrets = {
        access_token: `SECRET-access-${uid()}`,
        verify_token: `SECRET-verify-${uid()}`,
        app_secret: `SECRET-app-${uid()}`,
      };
      graph.setToken(secrets.access_token, {});
      graph.setPhoneNumber(phoneNumberId, { displayPhoneNumber: display, wabaId });
      const space = `Support ${uid()}`;

      // Add channel.
      await page.getByRole('button', { name: 'Add channel' }).click();
      const dialog = page.getByRole('dialog', { name: 'Add channel' });
      await dialog.getByRole('radio', { name: 'WhatsApp (Personal account)' }).check();
      await dialog
        .getByText(/Risk of account ban/)
        .first()
        .waitFor();
      await dialog.getByRole('radio', { name: 'WhatsApp (Meta Cloud API)' }).check();
      expect(await dialog.getByLabel('Space').inputValue()).toBe('WhatsApp (Meta Cloud API)');
      await dialog.getByLabel('Space').fill(space);
      await dialog.getByLabel('Agent', { exact: true }).selectOption('echo');
      await dialog.getByRole('group', { name: 'When a message arrives' }).waitFor();
      expect(await dialog.getByRole('radio', { name: 'Treat as a message from you' }).isChecked()).toBe(true);
      await shoot(page, 'add-channel', false);
      await dialog.getByRole('button', { name: 'Create' }).click();
      await page.getByRole('heading', { name: space }).waitFor();
      const id = /#\/channels\/(ch_[a-z0-9]+)/.exec(page.url())?.[1];
      expect(id).toBeTruthy();
      expect(await page.getByRole('tab', { name: 'Config' }).getAttribute('aria-selected')).toBe('true');

      // Config: ids, then each secret through the credential picker (New credential in the Local vault).
      await page.getByLabel('phone_number_id').fill(phoneNumberId);
      await page.getByLabel('business_account_id').fill(wabaId);
      for (const field of ['access_token', 'verify_token', 'app_secret'] as const) {
        await page.getByRole('button', { name: `Configure ${field}` }).click();
        const picker = page.getByRole('dialog', { name: `Credential for ${field}` });
        await expect.poll(() => picker.getByLabel('Vault').inputValue()).toBe('local');
        const newCredential = picker.getByRole('button', { name: 'New credential' });
        // The picker opens in "new credential" mode by itself once it has found no items, which can hide the
        // button between a visibility check and the click: click if it is there, then wait for the form.
        await newCredential.click({ timeout: 2_000 }).catch(() => undefined);
        await picker.getByLabel('Name').waitFor();
        await picker.getByLabel('Name').fill(`${field}-${uid()}`);
        await picker.getByLabel('Value').fill(secrets[field]);
        expect(await picker.getByLabel('Field').inputValue()).toBe('value');
        if (field === 'app_secret') await shoot(page, 'credential-picker', false); // a modal's backdrop covers the viewport only
        await picker.getByRole('button', { name: 'Save' }).click();
        await picker.waitFor({ state: 'detached' });
      }
      await page.getByRole('button', { name: 'Save', exact: true }).click();

      // The Webhook URL appears with Copy; the secrets never came back to the browser.
      const webhook = page.getByLabel('Webhook URL');
      await webhook.waitFor();
      expect(await webhook.inputValue()).toBe(`${w.url}/webhooks/whatsapp/${id}`);
      await page.getByRole('button', { name: 'Copy' }).click();
      expect(await page.evaluate('navigator.clipboard.readText()')).toBe(`${w.url}/webhooks/whatsapp/${id}`);
      const html = await page.content();
      for (const s of Object.values(secrets)) expect(html).not.toContain(s);
      await shoot(page, 'channel-config');

      // Meta verifies the webhook: Connected appears without a reload.
      const navigations: string[] = [];
      page.on('framenavigated', (f) => navigations.push(f.url()));
      expect((await verify(w, id!, secrets.verify_token, 'challenge-1')).status).toBe(200);
      await page.locator('.status-card .badge', { hasText: 'Connected' }).waitFor({ timeout: WAIT_MS });
      expect(navigations).toEqual([]);

      // Pair: the code shows large with its countdown; a signed webhook carrying it pairs the sender live.
      await page.getByRole('tab', { name: 'Pairing' }).click();
      await page.getByRole('button', { name: 'Pair', exact: true }).click();
      const codeBox = page.getByRole('status', { name: /Pairing code/ });
      await codeBox.waitFor();
      const code = (await codeBox.textContent())!.trim();
      expect(code).toMatch(/^[A-Z]{3}-\d{3}$/);
      await page.getByText(/expires in \d+:\d\d/).waitFor();
      await shoot(page, 'channel-pairing');
      const from = phone();
      const target = { phoneNumberId, displayPhoneNumber: bare(display), wabaId };
      expect(
        (
          await postWebhook(w, id!, inboundPayload(target, [{ from, text: code, id: wamid() }]), {
            secret: secrets.app_secret,
          })
        ).status,
      ).toBe(200);
      await page.getByRole('button', { name: `Un-pair ${from}` }).waitFor({ timeout: WAIT_MS });
      await page.getByRole('button', { name: 'Re-pair' }).waitFor();

      // The paired sender's text is echoed; the Messages tab shows both directions live.
      const text = `hello console ${uid()}`;
      await page.getByRole('tab', { name: 'Messages' }).click();
      expect(
        (
          await postWebhook(w, id!, inboundPayload(target, [{ from, text, id: wamid() }]), {
            secret: secrets.app_secret,
          })
        ).status,
      ).toBe(200);
      await graph.waitForSent((s) => s.to === bare(from) && s.text === text, WAIT_MS);
      const rows = page.getByRole('row').filter({ hasText: text });
      await expect.poll(() => rows.count(), { timeout: WAIT_MS }).toBe(2);
      await rows.filter({ hasText: '← in' }).filter({ hasText: 'answered' }).waitFor({ timeout: WAIT_MS });
      await rows.filter({ hasText: '→ out' }).waitFor();
      await shoot(page, 'channel-messages');

      // The Temporal UI's list reads without clicking in: user metadata on the channel and its chats.
      const desc = await w.client.workflow.getHandle(`channel-${id}`).describe();
      expect(await desc.staticSummary()).toBe(
        `WhatsApp (Meta Cloud API) · number not linked yet · space “${space}” · agent echo`,
      );
      expect(await desc.staticDetails()).toContain(`(${w.config.publicUrl}/#/channels/${id})`);
      const chat = await waitFor('the chat workflow in the visibility list', async () => {
        for await (const wf of w.client.workflow.list({ query: `WharfChannelId = "${id}"` })) return wf;
        return undefined;
      });
      const chatDesc = await w.client.workflow.getHandle(chat.workflowId).describe();
      expect(await chatDesc.staticSummary()).toContain(`channel ${id}`);
      expect(await chatDesc.staticSummary()).toContain(`WhatsApp (Meta Cloud API) · `);
      expect(await chatDesc.staticSummary()).toContain(`space “${space}” · agent echo`);
      expect(await chatDesc.staticDetails()).toContain(`(${w.config.publicUrl}/#/channels/${id}/messages)`);

      await page.getByRole('link', { name: 'Channels' }).first().click();
      await page.getByRole('row').filter({ hasText: space }).filter({ hasText: 'Connected' }).waitFor();
      await shoot(page, 'channels');
      await page.setViewportSize({ width: 390, height: 844 });
      await shoot(page, 'channels-390');
      await page.goto(`${w.url}/#/channels/${id}/pairing`);
      await page.getByRole('button', { name: 'Re-pair' }).waitFor();
      await shoot(page, 'channel-pairing-390');
    } finally {
      await context.close();
    }
  });
});

describe('live events', () => {
  it('GET /api/events streams a change as soon as a channel is written, for bearer clients too', async () => {
    const ac = new AbortController();
    const r = await fetch(`${w.url}/api/events`, {
      headers: { authorization: `Bearer ${w.token}` },
      signal: ac.signal,
    });
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toContain('text/event-stream');
    const reader = r.body!.getReader();
    const created = await w.api('POST', '/api/channels', {
      provider: 'whatsapp_cloud',
      agent: 'echo',
      space: `Events ${uid()}`,
    });
    expect(created.status).toBe(201);
    let text = '';
    const deadline = Date.now() + WAIT_MS;
    while (!text.includes(`"channelId":"${created.data.id}"`) && Date.now() < deadline) {
      const { value, done } = await reader.read();
      if (done) break;
      text += Buffer.from(value).toString('utf8');
    }
    ac.abort();
    expect(text).toContain(`event: change\ndata: {"channelId":"${created.data.id}","what":"channel"}`);
  });
});

describe('console: troubleshooting', () => {
  it('warns when no app is subscribed to the WABA’s webhooks and subscribes it on request', async () => {
    const setup = await cloudChannel(w, graph, { stage: 'created' });
    graph.setSubscribedApps(setup.wabaId, []);
    expect((await w.api('PUT', `/api/channels/${setup.id}/config`, setup.config)).status).toBe(200);
    const { context, page } = await loggedIn();
    try {
      await page.goto(`${w.url}/#/channels/${setup.id}`);
      const warning = page.getByText(/No app is subscribed to this WhatsApp Business Account/);
      await warning.waitFor({ timeout: WAIT_MS });
      await shoot(page, 'channel-subscribe-warning');
      await page.getByRole('button', { name: 'Subscribe the app' }).click();
      await warning.waitFor({ state: 'detached', timeout: WAIT_MS });
      expect((await w.api('GET', `/api/channels/${setup.id}`)).data.diagnostics.subscribedApps.count).toBe(1);
    } finally {
      await context.close();
    }
  });
});

describe('console: personal account', () => {
  it('shows the QR as an image, replaces it live when it rotates, and turns Connected on scan', async () => {
    const { context, page } = await loggedIn();
    try {
      const before = baileys.sockets.length;
      await page.getByRole('button', { name: 'Add channel' }).click();
      const dialog = page.getByRole('dialog', { name: 'Add channel' });
      await dialog.getByRole('radio', { name: 'WhatsApp (Personal account)' }).check();
      const space = `Phone ${uid()}`;
      await dialog.getByLabel('Space').fill(space);
      await dialog.getByRole('button', { name: 'Create' }).click();
      await page.getByRole('heading', { name: space }).waitFor();

      const socket = await baileys.waitForSocket(before);
      const qr = page.getByRole('img', { name: 'QR code' });
      await qr.waitFor({ timeout: WAIT_MS });
      const first = await qr.getAttribute('src');
      expect(first).toMatch(/^data:image\/png;base64,/);
      await page.getByRole('button', { name: 'Refresh' }).waitFor();
      await page.getByRole('button', { name: 'Link with phone number instead' }).waitFor();
      await shoot(page, 'personal-qr');

      // WhatsApp rotates the QR: the image changes without a reload.
      socket.emitQr();
      await expect.poll(() => qr.getAttribute('src'), { timeout: WAIT_MS }).not.toBe(first);

      socket.scan(`1555${digits(7)}`);
      await page.locator('.status-card .badge', { hasText: 'Connected' }).waitFor({ timeout: WAIT_MS });
      expect(await page.getByRole('img', { name: 'QR code' }).count()).toBe(0);
    } finally {
      await context.close();
    }
  });
});

describe('console: policies', () => {
  it('shows Cedar’s error at its line, fills the guide’s template with a real channel, and answers "Would this get through?"', async () => {
    const { context, page } = await loggedIn();
    try {
      // The policies in force load slowly: what the operator types meanwhile must not be replaced by them, so the
      // editor (and Save) wait for the load. Before, a slow load overwrote the typed text and Save stored the old.
      let release = (): void => undefined;
      const held = new Promise<void>((resolve) => (release = resolve));
      await page.route('**/api/policies', async (route) => {
        if (route.request().method() === 'GET') await held;
        await route.continue();
      });
      await page.getByRole('link', { name: 'Policies' }).click();
      await page.getByRole('heading', { name: 'Policies' }).waitFor();
      const editor = page.getByLabel('Cedar policies');
      expect(await editor.isEditable()).toBe(false);
      expect(await page.getByRole('button', { name: 'Save', exact: true }).isDisabled()).toBe(true);
      release();
      await editor.fill(
        '// line 1\npermit(principal, action, resource);\npermit(principal, action == Policy::Action::"receive_message", resource) when { resource.nope };\n',
      );
      await page.getByRole('button', { name: 'Save', exact: true }).click();
      const errors = page.getByRole('list', { name: 'Policy errors' });
      await errors.waitFor();
      await errors.getByRole('button', { name: /^Line 3/ }).waitFor();
      await shoot(page, 'policies-error');

      // The guide's example names agent "assistant": valid Cedar, but saving warns at its line.
      await editor.fill(
        'permit(\n  principal == Policy::Agent::"assistant",\n  action == Policy::Action::"receive_message",\n  resource in Policy::Channel::"whatsapp_cloud"\n) when { resource.sender.address == "+15551234567" };\n',
      );
      await page.getByRole('button', { name: 'Save', exact: true }).click();
      const warnings = page.getByRole('list', { name: 'Policy warnings' });
      await warnings.getByText('There is no agent "assistant"').waitFor();
      await warnings.getByRole('button', { name: 'Line 2' }).waitFor();
      await shoot(page, 'policies-warning');

      // The template names the real channel and its agent, and saves clean.
      const channels = (await w.api('GET', '/api/channels')).data as Array<{ id: string; agent: string }>;
      expect(channels.length).toBeGreaterThan(0);
      await page.getByLabel('Channel for the template').selectOption(channels[0].id);
      await editor.fill('');
      await page.getByRole('button', { name: 'Insert allowlist template' }).click();
      const text = await editor.inputValue();
      expect(text).toContain(`Policy::Channel::"${channels[0].id}"`);
      expect(text).toContain(`Policy::Agent::"${channels[0].agent}"`);
      await page.getByRole('button', { name: 'Save', exact: true }).click();
      await page.getByText('Saved. The new policies apply').waitFor();
      expect(await page.getByRole('list', { name: 'Policy warnings' }).count()).toBe(0);

      await page.getByLabel('Channel', { exact: true }).selectOption(channels[0].id);
      await page.getByLabel('Sender').fill('+15551234567');
      await page.getByRole('button', { name: 'Check' }).click();
      // The deciding policy is named with the line it is written on.
      await page.getByRole('status').filter({ hasText: 'Allowed' }).filter({ hasText: 'policy0 (line 1)' }).waitFor();
      await shoot(page, 'policies');
      await w.api('PUT', '/api/policies', { policies: '' });
    } finally {
      await context.close();
    }
  });
});

describe('console: vaults', () => {
  it('creates, rotates and deletes Local items by name, never showing a value; a credential in use is not deleted', async () => {
    const name = `Key ${uid()}`;
    const first = `sk-first-${uid()}`;
    const rotated = `sk-rotated-${uid()}`;
    const inUse = await w.api('POST', '/api/vaults/local/items', {
      name: `In use ${uid()}`,
      kind: 'api_key',
      fields: { value: `sk-used-${uid()}` },
    });
    const agentId = `vault-agent-${uid()}`.toLowerCase();
    const agent = await w.api('POST', '/api/agents', {
      id: agentId,
      kind: 'openai',
      baseUrl: 'http://127.0.0.1:9/v1',
      model: 'm',
      apiKey: { vault: 'local', item: inUse.data.item, field: 'value' },
    });
    expect(agent.status).toBe(201);
    const { context, page } = await loggedIn();
    try {
      await page.getByRole('link', { name: 'Vaults' }).click();
      await page.getByRole('heading', { name: 'Vaults', exact: true }).waitFor();
      const form = page.locator('form').filter({ has: page.getByRole('heading', { name: 'New credential' }) });
      await form.getByLabel('Name').fill(name);
      await form.getByLabel('Value').fill(first);
      await form.getByRole('button', { name: 'Create' }).click();
      const row = page.getByRole('row').filter({ hasText: name });
      await row.waitFor();
      await expect.poll(() => row.textContent()).toContain('value');
      const item = (await w.api('GET', '/api/vaults/local/items')).data.find((i: { name: string }) => i.name === name)
        .item as string;
      expect(await w.store.vault.resolve({ vault: 'local', item, field: 'value' })).toBe(first);

      // Rotate: a new value for the field, typed in and never shown.
      await page.getByRole('button', { name: `Rotate ${name}` }).click();
      await page.getByLabel(`Field of ${name}`).selectOption('value');
      await page.getByLabel(`New value for ${name}`).fill(rotated);
      await row.getByRole('button', { name: 'Save' }).click();
      await page.getByRole('button', { name: `Rotate ${name}` }).waitFor();
      expect(await w.store.vault.resolve({ vault: 'local', item, field: 'value' })).toBe(rotated);
      const html = await page.content();
      for (const secret of [first, rotated]) expect(html).not.toContain(secret);

      // Delete of a credential an agent uses: refused, and the reason shown beside that item.
      const usedRow = page.getByRole('row').filter({ hasText: inUse.data.name as string });
      await page.getByRole('button', { name: `Delete ${inUse.data.name as string}` }).click();
      await page.getByRole('dialog').getByRole('button', { name: 'Delete credential' }).click();
      await usedRow.getByRole('alert').waitFor();
      expect(await usedRow.getByRole('alert').textContent()).toMatch(/agent|refer|use/i);
      expect((await w.api('GET', '/api/vaults/local/items')).data.map((i: { item: string }) => i.item)).toContain(
        inUse.data.item,
      );

      // Delete, confirmed in a dialog (Cancel first keeps it).
      await page.getByRole('button', { name: `Delete ${name}` }).click();
      await page.getByRole('dialog').getByRole('button', { name: 'Cancel' }).click();
      await expect.poll(() => row.count()).toBe(1);
      await page.getByRole('button', { name: `Delete ${name}` }).click();
      await shoot(page, 'vaults-delete', false);
      await page.getByRole('dialog').getByRole('button', { name: 'Delete credential' }).click();
      await expect.poll(() => row.count(), { timeout: WAIT_MS }).toBe(0);
      expect(await w.store.vault.resolve({ vault: 'local', item, field: 'value' })).toBeNull();
    } finally {
      await context.close();
      await w.api('DELETE', `/api/agents/${agentId}`);
    }
  });
});

describe('console: keyboard', () => {
  /** What the focused element is called: its label, aria-label or text. */
  const focusedName = (page: Page): Promise<string> =>
    page.evaluate<string>(
      `(() => { const el = document.activeElement; if (!el) return ''; const label = el.labels?.[0]?.textContent ?? el.getAttribute('aria-label'); return (label ?? el.textContent ?? '').trim(); })()`,
    );
  /** Presses Tab until the focused control is `name`; fails after 40 presses. */
  async function tabTo(page: Page, name: string): Promise<void> {
    for (let i = 0; i < 40; i++) {
      if ((await focusedName(page)) === name) return;
      await page.keyboard.press('Tab');
    }
    throw new Error(`Tab never reached “${name}” (last: “${await focusedName(page)}”)`);
  }
  /** Whether the focused element shows a focus ring (an outline or a box shadow). */
  const focusVisible = (page: Page): Promise<boolean> =>
    page.evaluate<boolean>(
      `(() => { const st = getComputedStyle(document.activeElement); return (st.outlineStyle !== 'none' && parseFloat(st.outlineWidth) > 0) || st.boxShadow !== 'none'; })()`,
    );

  it('works without a mouse: log in, skip link, Add channel opens and closes, tabs follow the arrow keys; focus is visible', async () => {
    const created = await w.api('POST', '/api/channels', {
      provider: 'whatsapp_cloud',
      agent: 'echo',
      space: `Keys ${uid()}`,
    });
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const page = await context.newPage();
    try {
      await page.goto(w.url);
      await tabTo(page, 'Admin token');
      await page.keyboard.type(w.token);
      await page.keyboard.press('Enter');
      await page.getByRole('heading', { name: 'Channels' }).waitFor();

      // The first Tab of a page reaches the skip link, which moves focus to the content.
      await page.reload();
      await page.getByRole('heading', { name: 'Channels' }).waitFor();
      await page.keyboard.press('Tab');
      expect(await focusedName(page)).toBe('Skip to content');
      expect(await focusVisible(page)).toBe(true);
      await page.keyboard.press('Enter');
      expect(await page.evaluate<string>('document.activeElement?.id')).toBe('main');

      // Add channel: a modal dialog takes focus; Escape closes it and focus returns to the button.
      await tabTo(page, 'Add channel');
      expect(await focusVisible(page)).toBe(true);
      await page.keyboard.press('Enter');
      await page.getByRole('dialog').waitFor();
      expect(await page.evaluate<boolean>(`!!document.activeElement?.closest('dialog')`)).toBe(true);
      await page.keyboard.press('Escape');
      await expect.poll(() => page.getByRole('dialog').count()).toBe(0);
      // Focus comes back once the console has re-rendered without the dialog (the dialog can leave the
      // accessibility tree a moment earlier, on a busy machine).
      await expect.poll(() => focusedName(page)).toBe('Add channel');

      // The channel's tabs: arrow keys, Home and End move between them, and focus follows.
      await page.goto(`${w.url}/#/channels/${created.data.id as string}`);
      await page.getByRole('tab', { name: 'Config' }).waitFor();
      await tabTo(page, 'Config');
      const selected = (): Promise<string> => page.getByRole('tab', { selected: true }).innerText();
      await page.keyboard.press('ArrowRight');
      await expect.poll(selected).toBe('Messages');
      await expect.poll(() => focusedName(page)).toBe('Messages');
      await page.keyboard.press('End');
      await expect.poll(selected).toBe('Pairing');
      await page.keyboard.press('Home');
      await expect.poll(selected).toBe('Config');
      await page.keyboard.press('ArrowLeft');
      await expect.poll(selected).toBe('Pairing');
      await expect.poll(() => focusedName(page)).toBe('Pairing');
    } finally {
      await context.close();
    }
  });
});

describe('console: cross-site requests', () => {
  it('a page on another origin cannot use the session cookie to change anything', async () => {
    const created = await w.api('POST', '/api/channels', {
      provider: 'whatsapp_cloud',
      agent: 'echo',
      space: `Cross ${uid()}`,
    });
    expect(created.status).toBe(201);
    const id = created.data.id as string;
    const { context, page } = await loggedIn();
    try {
      // Same host, another port: the same *site*, so SameSite=Strict still sends the cookie. Origin is what refuses.
      evilForm = `<form method="POST" action="${w.url}/api/channels/${id}/disconnect"><button>go</button></form>`;
      await page.goto(evilUrl);
      const [response] = await Promise.all([
        page.waitForResponse((r) => r.url().includes('/disconnect')),
        page.getByRole('button', { name: 'go' }).click(),
      ]);
      expect(response.status()).toBe(403);
      expect(((await response.json()) as { error: { code: string } }).error.code).toBe('forbidden');
      expect((await w.api('GET', `/api/channels/${id}`)).data.status).toBe('setup');

      // A script's fetch from that origin is refused the same way.
      await page.goto(evilUrl);
      const status = await page.evaluate(async (url) => {
        const r = await fetch(url, { method: 'POST', credentials: 'include', mode: 'no-cors' }).catch(() => null);
        return r?.type ?? 'error';
      }, `${w.url}/api/channels/${id}/disconnect`);
      expect(['opaque', 'error']).toContain(status);
      expect((await w.api('GET', `/api/channels/${id}`)).data.status).toBe('setup');

      // The same request from the console's own origin goes through.
      await page.goto(w.url);
      const own = await page.evaluate(
        async (url) => (await fetch(url, { method: 'POST' })).status,
        `/api/channels/${id}/disconnect`,
      );
      expect(own).toBe(200);
      await waitFor(
        'disconnected',
        async () => (await w.api('GET', `/api/channels/${id}`)).data.status === 'disconnected',
      );
    } finally {
      await context.close();
    }
  });

  it('every page renders at 390 px without horizontal scrolling', async () => {
    const { context, page } = await loggedIn({ width: 390, height: 844 });
    try {
      for (const [path, heading] of [
        ['channels', 'Channels'],
        ['policies', 'Policies'],
        ['agents', 'Agents'],
        ['vaults', 'Vaults'],
        ['signals', 'Signals'],
      ] as const) {
        await page.goto(`${w.url}/#/${path}`);
        await page.getByRole('heading', { name: heading, exact: true }).waitFor();
        const overflow = await page.evaluate<number>(
          'document.documentElement.scrollWidth - document.documentElement.clientWidth',
        );
        expect(overflow, `${path} scrolls sideways by ${overflow}px`).toBeLessThanOrEqual(0);
        // The editor with the guide's template in it (not saved), as an operator starts out.
        if (path === 'policies') await page.getByRole('button', { name: 'Insert allowlist template' }).click();
        await shoot(page, `${path}-390`);
        await page.setViewportSize({ width: 1280, height: 900 });
        // (The policies test took that page at 1280 px with a template saved and checked.)
        if (path !== 'policies') await shoot(page, path);
        await page.setViewportSize({ width: 390, height: 844 });
      }
    } finally {
      await context.close();
    }
  });
});
