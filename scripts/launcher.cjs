// The head of dist/zbm.cjs: zbm's bundled code follows it as one string, which this runs through
// V8's code cache. Under emulation, or on a small node, compiling the ~700 KB bundle costs as much
// as starting node itself, and zbm starts often: every command of `zbm serve` over ssh is a new
// process. With the cache, V8 skips that compile. (Node 22 has module.enableCompileCache; the
// nodes run Node 18 and 20.)
//
// The cache is code that root runs, so it is read only from a directory and a file that belong to
// this user and that nobody else can write. V8 checks that a cache fits the running V8 and flags,
// but compares the source only by its length: the cache's file name carries the bundle's hash.
// Anything amiss means no cache, never a failed run. ZBM_CODE_CACHE=off turns it off and
// ZBM_CODE_CACHE_DIR moves it (default /var/cache/zbm).
'use strict';

/** @param {string} bundle @param {string} hash */
// biome-ignore lint/correctness/noUnusedVariables: the line that scripts/build.mjs appends calls it
function runBundle(bundle, hash) {
  const fs = require('node:fs');
  const vm = require('node:vm');
  const { wrap } = require('node:module');
  const dir = process.env.ZBM_CODE_CACHE_DIR || '/var/cache/zbm';
  const file = `${dir}/code-${hash}-${process.version}-${process.arch}.v8`;
  const enabled = process.env.ZBM_CODE_CACHE !== 'off' && typeof process.geteuid === 'function';

  /** @param {import('node:fs').Stats} st */
  const ours = (st) => st.uid === process.geteuid() && (st.mode & 0o022) === 0;
  const trustedDir = () => {
    const st = fs.lstatSync(dir);
    return st.isDirectory() && ours(st);
  };

  let cachedData;
  if (enabled) {
    try {
      if (trustedDir()) {
        const fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
        try {
          const st = fs.fstatSync(fd);
          if (st.isFile() && ours(st)) cachedData = fs.readFileSync(fd);
        } finally {
          fs.closeSync(fd);
        }
      }
    } catch {
      cachedData = undefined;
    }
  }

  const script = new vm.Script(wrap(bundle), { filename: __filename, cachedData });
  if (enabled && (cachedData === undefined || script.cachedDataRejected)) {
    // At exit the cache also holds every function this run compiled, not only the top level.
    process.once('exit', () => {
      try {
        fs.mkdirSync(dir, { recursive: true, mode: 0o755 });
        if (!trustedDir()) return;
        const tmp = `${file}.${process.pid}.tmp`;
        fs.writeFileSync(tmp, script.createCachedData(), { mode: 0o644, flag: 'wx' });
        fs.renameSync(tmp, file);
        for (const name of fs.readdirSync(dir)) {
          if (/^code-.*\.v8$/.test(name) && `${dir}/${name}` !== file)
            fs.rmSync(`${dir}/${name}`, { force: true });
        }
      } catch {
        // A cache that could not be written is only a slower next start.
      }
    });
  }
  script.runInThisContext().call(module.exports, module.exports, require, module, __filename, __dirname);
}
