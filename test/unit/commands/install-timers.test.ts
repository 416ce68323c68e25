/**
 * install-timers keeps to the units it made from the same file: a host with two config files (a
 * node that is also a backup server) keeps both sets, and a unit it did not write is never replaced.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { createLogger } from '../../../src/cli/log.ts';
import { installTimers } from '../../../src/commands/config.ts';

const dir = mkdtempSync(join(tmpdir(), 'zbm-units-'));
const units = join(dir, 'units');
const node = join(dir, 'node.yaml');
const server = join(dir, 'server.yaml');

const job = (name: string, command: string) =>
  `  ${name}:\n    command: ${command}\n    schedule: hourly\n    local-zfs-root: main/bak-zbm\n`;

async function install(config: string): Promise<{ code: number; errors: string[] }> {
  const lines: string[] = [];
  const log = createLogger({ write: (l) => lines.push(l), journal: false });
  const code = await installTimers({ config, unitDir: units, start: false }, log);
  return { code, errors: lines.filter((l) => l.startsWith('error: ')) };
}

describe('install-timers: units per config file', () => {
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('keeps the units of another file, removes only its own stale ones, and never replaces a unit it did not write', async () => {
    writeFileSync(node, `jobs:\n${job('nodecheck', 'verify')}`);
    writeFileSync(server, `jobs:\n${job('prune', 'prune')}${job('verify', 'verify')}`);
    mkdirSync(units);
    assert.equal((await install(node)).code, 0);
    assert.equal((await install(server)).code, 0);
    assert.deepEqual(readdirSync(units).sort(), [
      'zbm-nodecheck.service',
      'zbm-nodecheck.timer',
      'zbm-prune.service',
      'zbm-prune.timer',
      'zbm-verify.service',
      'zbm-verify.timer',
    ]);
    // The server's verify job goes: its units go, the node's stay.
    writeFileSync(server, `jobs:\n${job('prune', 'prune')}`);
    assert.equal((await install(server)).code, 0);
    assert.deepEqual(readdirSync(units).sort(), [
      'zbm-nodecheck.service',
      'zbm-nodecheck.timer',
      'zbm-prune.service',
      'zbm-prune.timer',
    ]);
    // The same job name in the other file, and a unit written by hand: refused, left as they are.
    writeFileSync(join(units, 'zbm-mine.timer'), '[Timer]\nOnCalendar=daily\n');
    writeFileSync(
      node,
      `jobs:\n${job('nodecheck', 'verify')}${job('prune', 'prune')}${job('mine', 'verify')}`,
    );
    const clash = await install(node);
    assert.equal(clash.code, 1);
    assert.deepEqual(clash.errors, [
      `error: ${units}/zbm-prune.service was made from another file (${server}): left as it is; give the job another name in ${node}\n`,
      `error: ${units}/zbm-prune.timer was made from another file (${server}): left as it is; give the job another name in ${node}\n`,
      `error: ${units}/zbm-mine.timer was not written by zbm: left as it is; give the job another name in ${node}\n`,
    ]);
    assert.equal(readFileSync(join(units, 'zbm-mine.timer'), 'utf8'), '[Timer]\nOnCalendar=daily\n');
    assert.ok(!readdirSync(units).includes('zbm-mine.service'), 'a job is installed whole or not at all');
    assert.match(readFileSync(join(units, 'zbm-prune.timer'), 'utf8'), new RegExp(`from ${server}:`));
  });
});
