/** Delivery of a notification: mail through the local sendmail, JSON to webhooks. */
import { errorMessage } from '../errors.ts';
import { LocalHost } from '../host/local.ts';
import { run } from '../host/process.ts';
import { mailMessage, type Notification, redactUrl } from './message.ts';

/** Where Proxmox VE (and every MTA on Debian) provides sendmail. */
export const SENDMAIL = '/usr/sbin/sendmail';

const TIMEOUT_MS = 20_000;

export async function sendMail(
  n: Notification,
  to: readonly string[],
  from: string,
  sendmail = SENDMAIL,
): Promise<void> {
  // -t: recipients from the To header, never from argv; -oi: a line with a single dot is text.
  await run(new LocalHost(), [sendmail, '-t', '-oi'], {
    input: mailMessage(n, to, from, new Date()),
    timeoutMs: TIMEOUT_MS,
  });
}

export async function postWebhook(n: Notification, url: string, timeoutMs = TIMEOUT_MS): Promise<void> {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(n.payload),
    signal: AbortSignal.timeout(timeoutMs),
  });
  // The body is not needed; reading it frees the connection.
  await res.arrayBuffer().catch(() => undefined);
  if (!res.ok) throw new Error(`HTTP ${res.status} ${res.statusText}`.trim());
}

/** fetch says only "fetch failed"; the reason (refused, DNS, TLS) is in its cause. */
function fetchError(err: unknown): string {
  const cause = err instanceof Error ? (err as Error & { cause?: unknown }).cause : undefined;
  return cause === undefined ? errorMessage(err) : `${errorMessage(err)}: ${errorMessage(cause)}`;
}

export interface Targets {
  readonly mail: readonly string[];
  readonly webhooks: readonly string[];
}

/**
 * Sends n to every target, all at once; returns one message per target that failed (URLs
 * redacted). A failing target never stops the others.
 */
export async function deliver(
  n: Notification,
  targets: Targets,
  from: string,
  sendmail = SENDMAIL,
): Promise<string[]> {
  const jobs: Promise<string | null>[] = [];
  if (targets.mail.length > 0) {
    jobs.push(
      sendMail(n, targets.mail, from, sendmail).then(
        () => null,
        (err: unknown) => `mail to ${targets.mail.join(', ')} through ${sendmail}: ${errorMessage(err)}`,
      ),
    );
  }
  for (const url of targets.webhooks) {
    jobs.push(
      postWebhook(n, url).then(
        () => null,
        (err: unknown) => `webhook ${redactUrl(url)}: ${fetchError(err)}`,
      ),
    );
  }
  return (await Promise.all(jobs)).filter((m): m is string => m !== null);
}
