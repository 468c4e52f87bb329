/**
 * What the Graph client reads of Meta's successful answers, as zod schemas: strict on the fields Wharf uses,
 * loose on everything else (Meta adds fields freely). Error bodies and `debug_token` stay read field by field
 * in graph-client.ts: every field there is optional and a diagnosis is built from whatever is present.
 */
import { z } from 'zod';

/** `POST /{phone-number-id}/messages`: the first message's id (the wamid). */
export const SentMessageSchema = z.object({ messages: z.tuple([z.object({ id: z.string().min(1) })], z.unknown()) });

/** A non-empty string, or null when the field is missing or of another kind. */
const optionalText = z.string().min(1).nullable().catch(null);

/** `GET /{media-id}`: where to download the file, and what Meta says about it (each may be missing). */
export const MediaInfoSchema = z.object({
  url: z.string().min(1),
  mime_type: optionalText,
  sha256: optionalText,
  // Meta documents a number; some versions answer a string of digits.
  file_size: z
    .union([z.number(), z.string().regex(/^\d+$/).transform(Number)])
    .nullable()
    .catch(null),
});

/** `POST /{waba-id}/subscribed_apps`: Meta confirms with `success: true`. */
export const SubscribedSchema = z.object({ success: z.literal(true) });

/** One app's id and name (missing fields read as ''). */
const AppFields = z.object({
  id: z.union([z.string(), z.number()]).transform(String).catch(''),
  name: z.string().catch(''),
});

/**
 * `GET /{waba-id}/subscribed_apps`: the apps receiving the account's webhooks. Meta wraps each app in
 * `whatsapp_business_api_data`; older versions answered the fields flat. An entry that is not an object is
 * left out; an answer without a `data` list reads as no apps.
 */
export const SubscribedAppsSchema = z
  .object({
    data: z
      .array(z.unknown())
      .catch([])
      .transform((entries) =>
        entries.flatMap((entry) => {
          const wrapped = z.object({ whatsapp_business_api_data: AppFields }).safeParse(entry);
          if (wrapped.success) return [wrapped.data.whatsapp_business_api_data];
          const flat = z.object({}).passthrough().safeParse(entry);
          return flat.success ? [AppFields.parse(flat.data)] : [];
        }),
      ),
  })
  .catch({ data: [] });
