/**
 * probe() here, and in the conditions of a container: a child process under
 * a real seccomp filter that fails userfaultfd(2) with EPERM or ENOSYS, as
 * Docker's default profile does, running as an unprivileged user (so that
 * root's /dev/userfaultfd cannot be opened either). The filter is a small C
 * program (test/helpers/seccomp-deny.c) built with the system's cc; without
 * cc, or without root, those tests are skipped.
 */
import test from 'ava';
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { probe } from '../lib';

const root = path.join(__dirname, '..', '..');
const NOBODY = 65534;

test('probe() on this machine: tmem can run, with the features it uses', (t) => {
  const p = probe();
  t.true(p.ok, JSON.stringify(p));
  t.true(p.features.includes('MOVE'));
  t.is(p.kernel, os.release());
  t.true(p.seccomp === null || p.seccomp >= 0);
  t.is(p.reason, undefined);
});

let helper: string | null | undefined;
/** Builds seccomp-deny once; null (and why) when it cannot be built or run here. */
function seccompDeny(): { bin: string | null; why: string } {
  if (process.getuid?.() !== 0) return { bin: null, why: 'not root (the child drops to an unprivileged user)' };
  if (helper === undefined) {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tmem-seccomp-'));
    const bin = path.join(dir, 'seccomp-deny');
    const r = spawnSync('cc', ['-O2', '-o', bin, path.join(root, 'test', 'helpers', 'seccomp-deny.c')], {
      encoding: 'utf8',
    });
    helper = r.status === 0 ? bin : null;
    if (!helper) return { bin: null, why: `cc failed: ${r.error?.message ?? r.stderr}` };
  }
  return { bin: helper, why: '' };
}

const CHILD = `
const { probe, open } = require(${JSON.stringify(path.join(root, 'dist', 'lib'))});
(async () => {
  const p = probe();
  let openError = null;
  try {
    const s = await open({ residentLimit: '1MiB' });
    await s.close();
  } catch (e) {
    openError = { code: e.code, syscall: e.syscall, message: e.message, hint: e.hint };
  }
  console.log(JSON.stringify({ probe: p, openError, uid: process.getuid() }));
})();
`;

function runChild(
  bin: string,
  errno: number,
  uid: number,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    // cwd '/': the unprivileged child cannot enter a private temporary directory.
    const c = spawn(bin, [String(errno), String(uid), process.execPath, '-e', CHILD], {
      cwd: '/',
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: 60_000,
      killSignal: 'SIGKILL',
    });
    let stdout = '';
    let stderr = '';
    c.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    c.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    c.on('error', reject);
    c.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

interface ChildOut {
  probe: ReturnType<typeof probe>;
  openError: { code: string; syscall?: string; message: string; hint?: string } | null;
  uid: number;
}

for (const [errno, name] of [
  [1, 'EPERM'],
  [38, 'ENOSYS'],
] as const) {
  test(`in a container whose seccomp profile fails userfaultfd with ${name}: probe() says seccomp and how to fix it; open() throws ${name} with the hint`, async (t) => {
    const { bin, why } = seccompDeny();
    if (!bin) return (t.log(`skipped: ${why}`), t.pass());
    const r = await runChild(bin, errno, NOBODY);
    t.is(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout.trim().split('\n').pop() ?? '{}') as ChildOut;
    t.is(out.uid, NOBODY);
    t.false(out.probe.ok);
    t.is(out.probe.reason, 'seccomp');
    t.is(out.probe.seccomp, 2, 'a seccomp filter is on');
    t.regex(out.probe.hint ?? '', /seccomp/);
    t.regex(out.probe.hint ?? '', /userfaultfd/);
    t.truthy(out.openError, 'open() fails');
    t.is(out.openError!.code, name);
    t.regex(out.openError!.message, /seccomp/, 'the message says what to change');
    t.is(out.openError!.hint, out.probe.hint);
  });
}

test('userfaultfd(2) blocked by seccomp but /dev/userfaultfd open to the process (docker run --device /dev/userfaultfd): tmem runs, in full mode', async (t) => {
  const { bin, why } = seccompDeny();
  if (!bin) return (t.log(`skipped: ${why}`), t.pass());
  if (!fs.existsSync('/dev/userfaultfd')) return (t.log('skipped: no /dev/userfaultfd (Linux < 6.1)'), t.pass());
  const r = await runChild(bin, 1, 0); // root keeps access to root's /dev/userfaultfd
  t.is(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout.trim().split('\n').pop() ?? '{}') as ChildOut;
  t.is(out.probe.seccomp, 2);
  t.true(out.probe.ok, JSON.stringify(out.probe));
  t.true(out.probe.devUserfaultfd);
  t.false(out.probe.userModeOnly);
  t.is(out.openError, null);
});

test('an unprivileged process without a filter (vm.unprivileged_userfaultfd=0): probe() says it runs, in user-mode-only mode', async (t) => {
  const { bin, why } = seccompDeny();
  if (!bin) return (t.log(`skipped: ${why}`), t.pass());
  const sysctl = fs.readFileSync('/proc/sys/vm/unprivileged_userfaultfd', 'utf8').trim();
  const r = await runChild(bin, 0, NOBODY);
  t.is(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout.trim().split('\n').pop() ?? '{}') as ChildOut;
  t.is(out.probe.unprivilegedUserfaultfd, Number(sysctl));
  t.false(out.probe.devUserfaultfd, "root's /dev/userfaultfd is not open to nobody");
  t.true(out.probe.ok, JSON.stringify(out.probe));
  if (sysctl === '0') t.true(out.probe.userModeOnly, 'only user-mode faults without the sysctl');
  t.is(out.openError, null);
});
