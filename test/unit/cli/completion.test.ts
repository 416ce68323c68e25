/**
 * The bash completion script, run by bash as a user's shell would: commands, subcommands, flags,
 * and after `zbm run` the job names of the config file and the flags of that job's command.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { completionScript } from '../../../src/cli/program.ts';

let dir = '';

/** What the completion offers for the words typed so far (the last one is being completed). */
function complete(...words: string[]): string[] {
  const script = `${completionScript()}
COMP_WORDS=(${words.map((w) => `'${w}'`).join(' ')})
COMP_CWORD=${words.length - 1}
_zbm
printf '%s\\n' "\${COMPREPLY[@]}"`;
  const out = execFileSync('bash', ['-c', script], {
    encoding: 'utf8',
    env: {
      ...process.env,
      PATH: `${dir}:${process.env.PATH}`,
      ZBM_CONFIG: join(process.cwd(), 'packaging/zbm.yaml'),
    },
  });
  return out.split('\n').filter(Boolean).sort();
}

describe('bash completion', () => {
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'zbm-completion-'));
    // `zbm` as installed: here the sources, run by node.
    writeFileSync(
      join(dir, 'zbm'),
      `#!/bin/sh\nexec ${process.execPath} --import tsx ${join(process.cwd(), 'src/main.ts')} "$@"\n`,
    );
    chmodSync(join(dir, 'zbm'), 0o755);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('completes commands, config check and its flags', () => {
    assert.ok(complete('zbm', 'ba').includes('backup-pve'));
    assert.deepEqual(complete('zbm', 'config', ''), ['check']);
    assert.deepEqual(complete('zbm', 'config', 'check', '--'), ['--config', '--help', '--json', '--verbose']);
    assert.ok(complete('zbm', 'prune', '--keep-').includes('--keep-hourly'));
    assert.deepEqual(complete('zbm', 'help', 'back'), ['backup-pve']);
  });

  it('completes the job names after zbm run, then the flags of that job', () => {
    assert.deepEqual(complete('zbm', 'run', ''), ['backup', 'coverage']);
    const flags = complete('zbm', 'run', 'backup', '--');
    for (const f of ['--config', '--dry-run', '--vmid', '--bwlimit']) assert.ok(flags.includes(f), f);
    // Earlier spellings are accepted, not offered.
    assert.ok(!complete('zbm', 'restore', '--meta').includes('--metadata-dir'));
  });
});
