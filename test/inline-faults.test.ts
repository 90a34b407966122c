/**
 * Inline regions (faults: 'inline'): faults raised as SIGBUS in the faulting thread and
 * forwarded to the dispatcher (native/inline_fault.h, lib/dispatcher/inline.ts). Real
 * faults, every byte checked. Scenarios that hang or kill a process on failure run in
 * child processes (helpers/inline-child.ts) under a timeout and SIGKILL. The tests that
 * fault in this process run serially: a touch blocks the event loop of every other test.
 */
import test from 'ava';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { open } from '../lib';
import { native } from '../lib/native';
import { type ChildResult, Watchdog, runNodeChild, tempDir, withTimeout } from './helpers/harness';
import { PAGE, fillPage, pageMismatch } from './helpers/swap-pattern';

const watchdog = new Watchdog();
const touch = <T>(what: string, fn: () => T): T => watchdog.guard(what, 60000, fn);
const CHILD = path.join(__dirname, 'helpers', 'inline-child.js');
const show = (r: ChildResult): string => `code ${r.code}, signal ${r.signal}, ${r.ms} ms; stderr:\n${r.stderr}`;

test.serial('options: faults is checked for open(), region() and mapFile(), with codes', async (t) => {
  await t.throwsAsync(open({ faults: 'bogus' as never }), { code: 'ERR_INVALID_ARG_VALUE', message: /faults must be/ });
  await t.throwsAsync(open({ faults: 1 as never }), { code: 'ERR_INVALID_ARG_TYPE', message: /faults must be/ });
  const swap = await withTimeout(open({ residentLimit: '1MiB' }), 60000, 'open()');
  t.teardown(() => swap.close());
  t.throws(() => swap.region(4096, { faults: 'x' as never }), { code: 'ERR_INVALID_ARG_VALUE' });
  t.throws(() => swap.region(4096, { fault: 'inline' } as never), {
    code: 'ERR_INVALID_ARG_VALUE',
    message: /unknown key in region options: 'fault'; accepted: faults/,
  });
  t.throws(() => swap.region(4096, null as never), { code: 'ERR_INVALID_ARG_TYPE' });
  t.throws(() => swap.mapFile(__filename, { faults: 'x' as never }), { code: 'ERR_INVALID_ARG_VALUE' });
  t.throws(() => swap.mapFile(__filename, { writable: 1 as never }), { code: 'ERR_INVALID_ARG_TYPE' });
  t.false(swap.region(4096).inline);
  t.true(swap.region(4096, { faults: 'inline' }).inline);
});

test('main thread and a Worker fault inline on zero, stored, staged, same-filled and swap-file pages, with GCs', async (t) => {
  const dir = tempDir(t, 'tmem-inline-');
  const r = await runNodeChild(CHILD, ['states', dir], 120000);
  t.is(r.code, 0, show(r));
  t.regex(r.stderr, /child: region inline true/, show(r));
  t.regex(r.stderr, /child: done bad 0/, show(r));
  t.notRegex(r.stderr, /BAD/, show(r));
  const m = /child: faults (\{.*\}) swapIns/.exec(r.stderr);
  t.truthy(m, show(r));
  const f = JSON.parse(m![1]) as Record<string, number>;
  for (const k of ['zero', 'pool', 'same', 'staged', 'swapFile']) t.true(f[k] > 0, `faults.${k} ${f[k]}: ${show(r)}`);
});

test('a page read back write-protected (CLEAN), then written, by the main thread and a Worker: the write goes through', async (t) => {
  // The SIGBUS handler sees a write-protect fault as BUS_ADRERR like a missing one: served
  // natively as "mapped already" it would fault forever (a hang this test guards).
  const r = await runNodeChild(CHILD, ['clean-write'], 120000);
  t.is(r.code, 0, show(r));
  t.regex(r.stderr, /child: done bad 0/, show(r));
  t.notRegex(r.stderr, /BAD/, show(r));
  const m = /writeProtect faults (\d+) then (\d+)/.exec(r.stderr);
  t.truthy(m, show(r));
  t.true(Number(m![1]) > 0 && Number(m![2]) > Number(m![1]), show(r));
});

test.serial(
  'an inline region in the ava process: every byte back after eviction, faults served in the SIGBUS handler or forwarded',
  async (t) => {
    const swap = await withTimeout(open({ residentLimit: '256KiB', faults: 'inline' }), 60000, 'open()');
    t.teardown(() => swap.close());
    const pages = 256;
    const region = swap.region(pages * PAGE);
    const bytes = new Uint8Array(region.buffer);
    const before = native.inlineForwarded() + native.inlineServed();
    const servedBefore = native.inlineServed();
    touch('write', () => {
      for (let p = 0; p < pages; p++) fillPage(bytes, p * PAGE, p, 3);
    });
    await withTimeout(region.evict(), 60000, 'evict()');
    let bad = -1;
    touch('read back', () => {
      bad = 0;
      for (let p = 0; p < pages; p++) if (pageMismatch(bytes, p * PAGE, p, 3) >= 0) bad++;
    });
    t.is(bad, 0);
    t.true(
      native.inlineForwarded() + native.inlineServed() - before >= pages,
      'every first touch went through the SIGBUS handler',
    );
    // Zero pages on the first writes and pool pages on the read-back (not the runs: the
    // dispatcher's readahead takes those) are served in the handler itself, with no dispatcher.
    const inHandler = native.inlineServed() - servedBefore;
    t.true(inHandler > 0, `faults served in the handler: ${inHandler}`);
    t.log(
      `served in the SIGBUS handler ${inHandler}, forwarded ${native.inlineForwarded() + native.inlineServed() - before - inHandler}`,
    );
    t.true(swap.stats().evictions >= pages);
  },
);

test.serial('a file mapped inline reads the file byte for byte, and a writable one writes back', async (t) => {
  const dir = tempDir(t, 'tmem-inline-file-');
  const file = path.join(dir, 'data');
  const content = Buffer.alloc(64 * PAGE + 100);
  for (let p = 0; p < 64; p++) fillPage(content, p * PAGE, p, 5);
  content.fill(9, 64 * PAGE);
  fs.writeFileSync(file, content);
  const swap = await withTimeout(open({ residentLimit: '64KiB' }), 60000, 'open()');
  t.teardown(() => swap.close());
  const ro = swap.mapFile(file, { faults: 'inline' });
  t.true(ro.inline);
  const got = touch('read the mapping', () => Buffer.from(new Uint8Array(ro.buffer).slice(0, content.length)));
  t.true(got.equals(content), 'the mapping reads the file');
  await withTimeout(ro.close(), 60000, 'close()');
  const rw = swap.mapFile(file, { writable: true, faults: 'inline' });
  touch('write the mapping', () => new Uint8Array(rw.buffer).fill(0x5a, 3 * PAGE, 5 * PAGE));
  await withTimeout(rw.flush(), 60000, 'flush()');
  await withTimeout(rw.close(), 60000, 'close()');
  const after = fs.readFileSync(file);
  content.fill(0x5a, 3 * PAGE, 5 * PAGE);
  t.true(after.equals(content), 'the file holds the written pages and nothing else changed');
});

test.serial(
  'EFAULT: write(2) of a missing page of an inline region fails; a short count when only the first is resident',
  async (t) => {
    const dir = tempDir(t, 'tmem-inline-efault-');
    const swap = await withTimeout(open({ residentLimit: '1MiB', faults: 'inline' }), 60000, 'open()');
    t.teardown(() => swap.close());
    const region = swap.region(8 * PAGE);
    const bytes = new Uint8Array(region.buffer);
    const fd = fs.openSync(path.join(dir, 'out'), 'w');
    t.teardown(() => fs.closeSync(fd));
    t.throws(() => fs.writeSync(fd, bytes, 0, PAGE), { code: 'EFAULT' });
    touch('touch page 0', () => fillPage(bytes, 0, 0, 1));
    t.is(fs.writeSync(fd, bytes, 0, 2 * PAGE), PAGE, 'page 0 written, page 1 is missing');
    touch('touch page 1', () => fillPage(bytes, PAGE, 1, 1));
    t.is(fs.writeSync(fd, bytes, 0, 2 * PAGE), 2 * PAGE);
    // The same buffer of a dispatcher region (full mode) is written whole.
    const normal = swap.region(2 * PAGE, { faults: 'dispatcher' });
    if (!swap.stats().userModeOnly) t.is(fs.writeSync(fd, new Uint8Array(normal.buffer)), 2 * PAGE);
  },
);

test('signals: the main thread and a Worker fault inline while SIGUSR2, SIGWINCH and SIGCHLD keep arriving', async (t) => {
  const r = await runNodeChild(CHILD, ['signals'], 120000);
  t.is(r.code, 0, show(r));
  t.regex(r.stderr, /child: done bad 0/, show(r));
  const m = /SIGUSR2 (\d+), SIGWINCH (\d+), children (\d+)/.exec(r.stderr);
  t.truthy(m, show(r));
  t.true(Number(m![1]) > 0 && Number(m![2]) > 0, show(r));
  t.is(Number(m![3]), 4, show(r));
});

/** Builds helpers/sigbus-touch.c as an addon with the system's cc; null when it cannot be built. */
function buildSigbusAddon(dir: string): string | null {
  const src = path.join(__dirname, '..', '..', 'test', 'helpers', 'sigbus-touch.c');
  const out = path.join(dir, 'sigbus-touch.node');
  const r = spawnSync('cc', ['-shared', '-fPIC', '-o', out, src], { encoding: 'utf8' });
  return r.status === 0 ? out : null;
}

test('a real bus error elsewhere (a truncated file mapping) still kills the process with SIGBUS', async (t) => {
  const addon = buildSigbusAddon(tempDir(t, 'tmem-sigbus-'));
  if (!addon) {
    t.log('cc could not build helpers/sigbus-touch.c: skipped');
    t.pass();
    return;
  }
  const r = await runNodeChild(CHILD, ['truncated', addon], 60000);
  t.is(r.signal, 'SIGBUS', show(r));
  t.regex(r.stderr, /inline region served: bad 0/, show(r));
  t.regex(r.stderr, /loading the addon/, show(r));
  t.notRegex(r.stderr, /survived/, show(r));
});

test('kill(pid, SIGBUS) still kills a process that has inline regions', async (t) => {
  const r = await runNodeChild(CHILD, ['kill-bus'], 60000);
  t.is(r.signal, 'SIGBUS', show(r));
  t.regex(r.stderr, /inline region served: bad 0/, show(r));
  t.notRegex(r.stderr, /survived/, show(r));
});

test('the dispatcher dies while threads wait on inline faults: SIGBUS with the deadman message, never a hang', async (t) => {
  const rs = await Promise.all([
    runNodeChild(CHILD, ['dispatcher-gone'], 60000),
    runNodeChild(CHILD, ['dispatcher-gone'], 60000),
  ]);
  for (const r of rs) {
    t.is(r.signal, 'SIGBUS', show(r));
    t.regex(r.stderr, /tmem: the fault dispatcher is gone/, show(r));
    t.notRegex(r.stderr, /the deadman did not fire/, show(r));
  }
});

test('fork: child processes started while a Worker faults inline; eviction after the fork, every byte back', async (t) => {
  const r = await runNodeChild(CHILD, ['fork'], 120000);
  t.is(r.code, 0, show(r));
  t.regex(r.stderr, /children ok 3/, show(r));
  t.regex(r.stderr, /child: done bad 0/, show(r));
});

test('close() of an inline region while two Workers fault on it: no crash, no hang', async (t) => {
  const r = await runNodeChild(CHILD, ['close-faulting'], 120000);
  t.is(r.code, 0, show(r));
  t.regex(r.stderr, /workers done: rounds \d+, \d+/, show(r));
  t.regex(r.stderr, /child: done/, show(r));
});
