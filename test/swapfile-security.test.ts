/**
 * Swap file security (README "Swap file security"): the named swap file is
 * created with O_EXCL|O_NOFOLLOW and unlinked at once, so another local user
 * who places the path first (a symlink, a file they own and keep open) gets
 * nothing and loses nothing; paths that are not a new regular file (device
 * nodes, FIFOs) are refused and left untouched; a SIGKILLed program leaves no
 * file behind.
 *
 * The attacker is a real second uid (setpriv, helpers/second-uid.ts): those
 * tests need root and say so.
 */
import test, { type ExecutionContext } from 'ava';
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { open, type Swap } from '../lib';
import { tempDir, withTimeout } from './helpers/harness';
import { PAGE, fillPage } from './helpers/swapfile-pattern';
import { OTHER_UID, noSecondUid, runAs } from './helpers/second-uid';

/** A directory every user can write, with the sticky bit: a shared temp dir like /tmp. */
function sharedDir(t: ExecutionContext): string {
  const dir = tempDir(t, 'tmem-swapsec-');
  fs.chmodSync(dir, 0o1777);
  return dir;
}

const MARK = Buffer.from('attacker-owned bytes, must stay as they are\n');

/**
 * Tries open() with the swap file at `file`. If it is (wrongly) accepted,
 * pushes incompressible pages through the swap file as a program would, so
 * that what an attacker could see is really written, then closes.
 */
async function tryOpen(file: string): Promise<NodeJS.ErrnoException | undefined> {
  let swap: Swap;
  try {
    swap = await withTimeout(
      open({ residentLimit: '64KiB', poolLimit: '64KiB', swapFile: { path: file, size: '1MiB' } }),
      20000,
      'open()',
    );
  } catch (e) {
    return e as NodeJS.ErrnoException;
  }
  try {
    const region = swap.region(128 * PAGE);
    const bytes = new Uint8Array(region.buffer);
    for (let p = 0; p < 128; p++) fillPage(bytes, p * PAGE, p, 0, 1, 'random');
    await withTimeout(region.evict(), 20000, 'evict()');
    await region.close();
  } finally {
    await swap.close();
  }
  return undefined;
}

function expectEexist(t: ExecutionContext, err: NodeJS.ErrnoException | undefined, file: string): void {
  t.truthy(err, 'open() refused the path');
  if (!err) return;
  t.log(`${err.code}: ${err.message}`);
  t.is(err.code, 'EEXIST');
  t.is(err.syscall, 'open');
  t.is(typeof err.errno, 'number');
  t.regex(err.message, /swapFile\.path .* already exists/);
  t.true(err.message.includes(file));
}

test.serial(
  'a symlink another uid placed at swapFile.path is refused with EEXIST; its target is not truncated, chmodded, written or removed (needs root)',
  async (t) => {
    const why = noSecondUid();
    if (why) {
      t.log(`skipped: ${why}`);
      t.pass();
      return;
    }
    const dir = sharedDir(t);
    const target = path.join(tempDir(t, 'tmem-victim-'), 'root-file');
    fs.writeFileSync(target, MARK, { mode: 0o644 });
    const file = path.join(dir, 'app.swap');
    runAs(['ln', '-s', target, file]);
    expectEexist(t, await tryOpen(file), file);
    t.deepEqual(fs.readFileSync(target), MARK, 'the target still holds its bytes (no page, no truncation)');
    t.is(fs.statSync(target).mode & 0o777, 0o644, 'the target keeps its mode');
    t.true(fs.lstatSync(file).isSymbolicLink(), "the attacker's symlink is not removed either");
    t.is(fs.lstatSync(file).uid, OTHER_UID);
  },
);

test.serial(
  'a file another uid placed at swapFile.path and keeps open is refused with EEXIST; it receives no page (needs root)',
  async (t) => {
    const why = noSecondUid();
    if (why) {
      t.log(`skipped: ${why}`);
      t.pass();
      return;
    }
    const dir = sharedDir(t);
    const file = path.join(dir, 'app.swap');
    runAs(['sh', '-c', `umask 0; printf '%s' '${MARK.toString().trim()}' > '${file}'; chmod 0666 '${file}'`]);
    const placed = fs.readFileSync(file);
    // The attacker holds the file open from its own process, as it would to read pages later.
    const holder = spawn(
      'setpriv',
      [`--reuid=${OTHER_UID}`, `--regid=${OTHER_UID}`, '--clear-groups', 'sh', '-c', `exec 3<'${file}'; sleep 60`],
      { stdio: 'ignore' },
    );
    t.teardown(() => {
      holder.kill('SIGKILL');
    });
    expectEexist(t, await tryOpen(file), file);
    const st = fs.statSync(file);
    t.deepEqual(
      fs.readFileSync(file),
      placed,
      "the attacker's file holds only its own bytes: no page was written to it",
    );
    t.is(st.size, placed.length);
    t.is(st.uid, OTHER_UID, "still the attacker's file (not removed and recreated)");
    t.is(st.mode & 0o777, 0o666, 'its mode is not changed');
  },
);

test.serial(
  '/dev/null, a device node, a FIFO and a regular file at swapFile.path are refused with EEXIST and left as they were',
  async (t) => {
    const dir = tempDir(t, 'tmem-swapsec-');
    const devnull = fs.statSync('/dev/null');
    expectEexist(t, await tryOpen('/dev/null'), '/dev/null');
    const after = fs.statSync('/dev/null');
    t.true(after.isCharacterDevice(), '/dev/null is still there, a character device');
    t.is(after.mode, devnull.mode, '/dev/null keeps its mode');
    t.is(after.rdev, devnull.rdev);

    const fifo = path.join(dir, 'fifo');
    t.is(spawnSync('mkfifo', ['-m', '0644', fifo]).status, 0);
    expectEexist(t, await tryOpen(fifo), fifo);
    t.true(fs.lstatSync(fifo).isFIFO(), 'the FIFO is still there');
    t.is(fs.lstatSync(fifo).mode & 0o777, 0o644);

    if (process.getuid?.() === 0) {
      const node = path.join(dir, 'null');
      t.is(spawnSync('mknod', ['-m', '0666', node, 'c', '1', '3']).status, 0);
      expectEexist(t, await tryOpen(node), node);
      t.true(fs.lstatSync(node).isCharacterDevice(), 'the device node is still there');
      t.is(fs.lstatSync(node).mode & 0o777, 0o666);
    } else {
      t.log('device node case skipped: mknod needs root');
    }

    const plain = path.join(dir, 'existing');
    fs.writeFileSync(plain, MARK, { mode: 0o644 });
    expectEexist(t, await tryOpen(plain), plain);
    t.deepEqual(fs.readFileSync(plain), MARK, 'an existing file is never truncated');
    t.is(fs.statSync(plain).mode & 0o777, 0o644);
  },
);

test('SIGKILL of a process with a named swap file open leaves no file on disk', async (t) => {
  const dir = tempDir(t, 'tmem-swapsec-');
  const file = path.join(dir, 'app.swap');
  const child = spawn(process.execPath, [path.join(__dirname, 'helpers', 'swapfile-kill-child.js'), file], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.setEncoding('utf8');
  const ready = new Promise<string>((resolve, reject) => {
    child.stderr.on('data', (d: string) => {
      stderr += d;
      const m = /ready (\d+)/.exec(stderr);
      if (m) resolve(m[1]);
    });
    child.once('exit', (code, sig) => reject(new Error(`child exited early (${code ?? sig}): ${stderr}`)));
  });
  const exited = new Promise<NodeJS.Signals | null>((resolve) => child.once('exit', (_c, sig) => resolve(sig)));
  try {
    const pages = Number(await withTimeout(ready, 30000, 'child ready'));
    t.true(pages > 0, `pages reached the swap file: ${pages}`);
  } finally {
    child.kill('SIGKILL');
  }
  t.is(await withTimeout(exited, 30000, 'child exit'), 'SIGKILL');
  t.false(fs.existsSync(file), 'no swap file left after SIGKILL');
  t.deepEqual(fs.readdirSync(dir), [], 'nothing at all left in the directory');
});
