/**
 * What the Debian package ships, checked from the sources: the man page made from --help (its
 * sections, once each), the example configs (valid), the copyright of the bundled libraries.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { commandOptionSpecs } from '../../src/cli/program.ts';
import { parseConfig } from '../../src/config/config.ts';
import { hostHasZone } from '../../src/time/zoneinfo.ts';

const man = execFileSync(process.execPath, ['scripts/man.mjs', 'src/main.ts'], {
  encoding: 'utf8',
  env: { ...process.env, SOURCE_DATE_EPOCH: '1800000000' },
});

describe('the man page zbm(8)', () => {
  it('has the sections of a man page, each once and in order', () => {
    const sections = [...man.matchAll(/^\.SH (.+)$/gm)].map((m) => (m[1] ?? '').replace(/"/g, ''));
    assert.deepEqual(sections, [
      'NAME',
      'SYNOPSIS',
      'DESCRIPTION',
      'COMMANDS',
      'CONFIGURATION',
      'FILES',
      'ENVIRONMENT',
      'EXAMPLES',
      'EXIT STATUS',
      'SEE ALSO',
    ]);
  });

  it('describes every command once, and the exit codes once, not after every command', () => {
    const commands = [...man.matchAll(/^\.SS (.+)$/gm)].map((m) => m[1]);
    assert.deepEqual(commands, [
      'backup\\-pve',
      'replicate',
      'prune',
      'verify',
      'drill',
      'status',
      'list\\-backups',
      'files',
      'prepare\\-rollback',
      'restore',
      'run',
      'config check',
      'completion',
      'serve',
      'install\\-timers',
    ]);
    assert.equal(man.match(/130 {2}interrupted/g)?.length, 1);
    assert.equal(man.match(/Exit codes/g), null);
    assert.match(man, /^\.B \\-\\-remote <host>\n.*\(required\)$/m);
  });

  it('renders without a warning', {
    skip: spawnSync('groff', ['-v']).error !== undefined && 'no groff here',
  }, () => {
    const r = spawnSync('groff', ['-man', '-Tutf8', '-ww', '-z'], { input: man, encoding: 'utf8' });
    assert.equal(r.status, 0);
    assert.equal(r.stderr, '');
  });
});

describe('the example configs', () => {
  it('pass zbm config check as shipped: the node, the backup server and the replica', () => {
    for (const [file, jobs] of [
      ['packaging/zbm.yaml', ['backup', 'coverage']],
      ['packaging/backup-server.yaml', ['prune', 'verify', 'drill']],
      ['packaging/replica.yaml', ['replicate', 'prune', 'verify', 'drill']],
    ] as const) {
      const config = parseConfig(readFileSync(file, 'utf8'), file, commandOptionSpecs(), hostHasZone);
      assert.deepEqual(
        config.jobs.map((j) => j.name),
        jobs,
        file,
      );
      assert.ok(config.jobs.every((j) => j.schedule !== null));
      // Every node's jobs reach the backup server: spread, so that 30 nodes do not meet its sshd at once.
      const spread = file === 'packaging/zbm.yaml' ? '5min' : null;
      assert.deepEqual(
        config.jobs.map((j) => j.randomizedDelay),
        jobs.map(() => spread),
        file,
      );
    }
  });
});

describe('the package metadata', () => {
  it('lists the bundled libraries and their licences, and no placeholder homepage', () => {
    const copyright = readFileSync('packaging/copyright', 'utf8');
    assert.match(copyright, /^Files: usr\/bin\/zbm\n(?:.+\n)*License: Expat and ISC$/m);
    assert.match(copyright, /TJ Holowaychuk/);
    assert.match(copyright, /Eemeli Aro/);
    assert.match(copyright, /^License: ISC\n Permission to use/m);
    assert.doesNotMatch(readFileSync('packaging/control', 'utf8'), /Homepage:/);
  });
});
