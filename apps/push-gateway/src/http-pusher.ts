import type { PushEvaluation, RoomEvent } from '@atrium/matrix';
import type { PusherRecord } from '@atrium/push';

/**
 * The HTTP pusher: the request the homeserver makes to a push gateway
 * (data/api/push-gateway/push_notifier.yaml, `POST /_matrix/push/v1/notify`).
 */

/** Attempts per notification and pusher, and the pause before each retry (bounded: a gateway that is down costs at most this). */
export const PUSH_ATTEMPTS = 3;
const RETRY_DELAYS_MS = [500, 2000];
const ATTEMPT_TIMEOUT_MS = 10_000;

export interface NotificationDetails {
  event: RoomEvent;
  evaluation: PushEvaluation;
  /** The recipient. */
  userId: string;
  senderDisplayName: string | null;
  roomName: string | null;
  roomAlias: string | null;
  /** counts.unread: "The number of unread messages a user has across all of the rooms they are a member of." */
  unread: number;
}

function pusherData(pusher: PusherRecord): Record<string, unknown> {
  const data = JSON.parse(pusher.data) as Record<string, unknown>;
  return typeof data === 'object' && data !== null ? data : {};
}

/**
 * The request body for one pusher. `devices[].data`: "Servers MUST forward
 * the entire content including format and any custom keys but excluding url"
 * (pusher.yaml). With `format: event_id_only` only the event ID, room ID,
 * counts and devices go ("the server is expected to populate all of the
 * event-related fields" only when format is omitted). Counts whose value is
 * zero are omitted.
 */
export function notificationBody(pusher: PusherRecord, details: NotificationDetails): { notification: Record<string, unknown> } {
  const { url: _url, ...data } = pusherData(pusher);
  const { event, evaluation } = details;
  const counts: Record<string, number> = {};
  if (details.unread > 0) counts.unread = details.unread;
  const device = { app_id: pusher.app_id, pushkey: pusher.pushkey, pushkey_ts: pusher.pushkey_ts, data, tweaks: evaluation.tweaks };
  // "prio: … If omitted, high is assumed": low when the rule asked for neither a sound nor a highlight.
  const prio = evaluation.highlight || evaluation.tweaks.sound !== undefined ? 'high' : 'low';
  const notification: Record<string, unknown> = { event_id: event.event_id, room_id: event.room_id, prio, counts, devices: [device] };
  if (data.format !== 'event_id_only') {
    notification.type = event.type;
    notification.sender = event.sender;
    if (details.senderDisplayName) notification.sender_display_name = details.senderDisplayName;
    if (details.roomName) notification.room_name = details.roomName;
    if (details.roomAlias) notification.room_alias = details.roomAlias;
    if (event.type === 'm.room.member') notification.user_is_target = event.state_key === details.userId;
    notification.content = event.content;
  }
  return { notification };
}

/**
 * A counts-only request ("or update the number of unread notifications a user
 * has … The counts may be sent along with a notification about an event or by
 * themselves"): no event fields, so the gateway updates the badge without
 * alerting. `unread` is sent even when zero: a badge-only update exists to
 * bring the badge down, and an empty `counts` would say nothing.
 */
export function badgeBody(pusher: PusherRecord, unread: number): { notification: Record<string, unknown> } {
  const { url: _url, ...data } = pusherData(pusher);
  return {
    notification: {
      prio: 'low',
      counts: { unread },
      devices: [{ app_id: pusher.app_id, pushkey: pusher.pushkey, pushkey_ts: pusher.pushkey_ts, data }],
    },
  };
}

export type PushOutcome = { delivered: true; rejected: string[] } | { delivered: false; reason: string };

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * POSTs to the pusher's URL, retrying network errors, 429 and 5xx at most
 * PUSH_ATTEMPTS times (the gateway suppresses duplicates by `event_id`, so a
 * retry is safe); other 4xx answers are final. On success, the pushkeys the
 * gateway lists in `rejected` are returned for the caller to remove.
 */
export async function sendToPusher(url: string, body: unknown, fetchImpl: typeof fetch = fetch): Promise<PushOutcome> {
  let reason = 'not sent';
  for (let attempt = 0; attempt < PUSH_ATTEMPTS; attempt++) {
    if (attempt > 0) await sleep(RETRY_DELAYS_MS[attempt - 1] ?? 2000);
    try {
      const response = await fetchImpl(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
        signal: AbortSignal.timeout(ATTEMPT_TIMEOUT_MS),
        redirect: 'error',
      });
      if (response.ok) {
        const answer = (await response.json().catch(() => ({}))) as { rejected?: unknown };
        const rejected = Array.isArray(answer.rejected) ? answer.rejected.filter((k): k is string => typeof k === 'string') : [];
        return { delivered: true, rejected };
      }
      reason = `HTTP ${response.status}`;
      await response.body?.cancel().catch(() => undefined);
      if (response.status !== 429 && response.status < 500) return { delivered: false, reason };
    } catch (err) {
      reason = (err as Error).message;
    }
  }
  return { delivered: false, reason };
}
