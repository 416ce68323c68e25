/**
 * Saves a running lab VM's whole state (RAM and devices) into a file, through qemu's QMP socket,
 * then ends that qemu: lab/vm.sh boots later VMs from the file (`-incoming`) instead of booting
 * the kernel and systemd again under emulation. Exits non-zero, saying why, when the save fails.
 *
 *   node lab/qmp.mjs <qmp socket> <state file>
 */
import { createConnection } from 'node:net';

const [socket, file] = process.argv.slice(2);
if (!socket || !file) {
  console.error('usage: qmp.mjs <qmp socket> <state file>');
  process.exit(2);
}

const conn = createConnection(socket);
let buffer = '';
/** @type {((message: Record<string, unknown>) => void)[]} */
const waiting = [];
conn.on('data', (chunk) => {
  buffer += chunk.toString();
  for (let i = buffer.indexOf('\n'); i >= 0; i = buffer.indexOf('\n')) {
    const line = buffer.slice(0, i).trim();
    buffer = buffer.slice(i + 1);
    if (!line) continue;
    const message = JSON.parse(line);
    // Events come unasked; only replies (and the greeting) answer a waiting call.
    if ('event' in message) continue;
    waiting.shift()?.(message);
  }
});
let quitting = false;
conn.on('error', (err) => {
  // qemu quits by closing the socket under us: that is the end asked for.
  if (quitting) process.exit(0);
  console.error(`qmp: ${socket}: ${err.message}`);
  process.exit(1);
});

/** The next reply (or the greeting), as JSON. */
const next = () => new Promise((resolve) => waiting.push(resolve));

/** @param {string} execute @param {Record<string, unknown>} [args] */
async function call(execute, args) {
  const reply = next();
  conn.write(`${JSON.stringify(args ? { execute, arguments: args } : { execute })}\n`);
  const r = /** @type {Record<string, unknown>} */ (await reply);
  if ('error' in r) throw new Error(`${execute}: ${JSON.stringify(r.error)}`);
  return /** @type {Record<string, unknown>} */ (r.return ?? {});
}

try {
  await next();
  await call('qmp_capabilities');
  // Not stopped first: a VM saved stopped would be resumed stopped.
  // qemu 7.2 limits a migration to 32 MiB/s unless told otherwise: the file is local.
  await call('migrate-set-parameters', { 'max-bandwidth': 8 * 1024 ** 3 });
  await call('migrate', { uri: `exec:cat > '${file.replaceAll("'", "'\\''")}'` });
  for (;;) {
    const { status, 'error-desc': why } = await call('query-migrate');
    if (status === 'completed') break;
    if (status === 'failed' || status === 'cancelled') throw new Error(`migrate ${status}: ${why ?? ''}`);
    await new Promise((r) => setTimeout(r, 200));
  }
  // qemu may close the socket before it answers quit: nothing to wait for but the close.
  quitting = true;
  conn.end(`${JSON.stringify({ execute: 'quit' })}\n`);
} catch (err) {
  console.error(`qmp: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
}
