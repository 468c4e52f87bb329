/** A personal account's Config tab: the QR code (replaced live as it rotates), Refresh, or a phone-number code. */
import { useEffect, useState } from 'preact/hooks';
import { api, ApiError, messageOf } from '../api';
import { useChanges } from '../live';
import type { Channel, QrCode } from '../types';
import { Field } from '../ui';
import { remaining, useNow } from './Pairing';

/** Linking a `whatsapp_user` channel. */
export function PersonalLinkTab({ ch }: { ch: Channel }) {
  const [qr, setQr] = useState<QrCode | null>(null);
  const [why, setWhy] = useState<string>();
  const [byPhone, setByPhone] = useState(false);
  const [phone, setPhone] = useState('');
  const [code, setCode] = useState<{ code: string; expiresAt: string } | null>(null);
  const [error, setError] = useState<ApiError | Error | null>(null);
  const [busy, setBusy] = useState(false);
  const now = useNow(!!qr || !!code);

  const load = (): void => {
    api<QrCode>('GET', `/api/channels/${ch.id}/qr`).then(
      (q) => (setQr(q), setWhy(undefined)),
      (err) => (setQr(null), setWhy(err instanceof ApiError && err.status === 404 ? undefined : messageOf(err))),
    );
  };
  useEffect(load, [ch.id, ch.status]);
  useChanges((c) => c.channelId === ch.id && c.what === 'link', load);

  const refresh = async (): Promise<void> => {
    setBusy(true);
    setError(null);
    try {
      await api('POST', `/api/channels/${ch.id}/qr/refresh`);
    } catch (err) {
      setError(err as Error);
    } finally {
      setBusy(false);
    }
  };
  const requestCode = async (e: Event): Promise<void> => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      setCode(
        await api<{ code: string; expiresAt: string }>('POST', `/api/channels/${ch.id}/link-code`, {
          phoneNumber: phone,
        }),
      );
    } catch (err) {
      setError(err as Error);
    } finally {
      setBusy(false);
    }
  };

  if (ch.status === 'connected') {
    return (
      <p class="ok">
        Linked as {ch.selfAddress ?? 'this number'}. To link another phone, Disconnect on the Pairing tab, then
        Reconnect and scan the new QR code.
      </p>
    );
  }
  const qrLeft = qr ? remaining(qr.expiresAt, now) : null;
  return (
    <div class="link">
      <p>In WhatsApp on the phone: Settings → Linked devices → Link a device, then scan this code.</p>
      {!byPhone && (
        <div class="qr-box">
          {qr ? (
            <img src={qr.dataUrl} alt="QR code" width={256} height={256} />
          ) : (
            <div class="qr-wait">{why ?? 'Waiting for a QR code from WhatsApp…'}</div>
          )}
          {qrLeft && <span class="countdown">rotates in {qrLeft}</span>}
        </div>
      )}
      <div class="actions left">
        <button type="button" onClick={() => void refresh()} disabled={busy}>
          Refresh
        </button>
        <button type="button" class="link" onClick={() => setByPhone(!byPhone)}>
          {byPhone ? 'Show the QR code instead' : 'Link with phone number instead'}
        </button>
      </div>
      {byPhone && (
        <form onSubmit={(e) => void requestCode(e)}>
          <Field
            label="Phone number"
            error={error instanceof ApiError ? error.forField('phoneNumber') : undefined}
            hint="With country code, e.g. +15551234567."
          >
            {(id, describedBy) => (
              <input
                id={id}
                type="tel"
                value={phone}
                aria-describedby={describedBy}
                onInput={(e) => setPhone(e.currentTarget.value)}
              />
            )}
          </Field>
          <button type="submit" disabled={busy}>
            Get code
          </button>
          {code && remaining(code.expiresAt, now) && (
            <div class="code-box">
              <span class="code" role="status">
                {code.code}
              </span>
              <span class="countdown">
                On the phone: Linked devices → Link with phone number instead, then enter this code.
              </span>
            </div>
          )}
        </form>
      )}
      {error && !(error instanceof ApiError && error.forField('phoneNumber')) && (
        <p class="error" role="alert">
          {messageOf(error)}
        </p>
      )}
    </div>
  );
}
