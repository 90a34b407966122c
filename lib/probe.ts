/**
 * probe(): can tmem run here, and if not, why and how to fix it.
 *
 * tmem needs Linux 6.8+ (UFFDIO_MOVE) and a userfaultfd. Where one cannot be
 * had the causes are, in the order they are told apart:
 *
 *   kernel      not Linux, or older than 6.8, or no UFFD_FEATURE_MOVE
 *   seccomp     the userfaultfd(2) syscall fails with EPERM or ENOSYS while
 *               /proc/self/status says a seccomp filter is on: a container's
 *               profile (Docker's and Podman's default ones block userfaultfd)
 *   privileges  userfaultfd(2) is refused (EPERM, no filter) and
 *               /dev/userfaultfd cannot be opened: vm.unprivileged_userfaultfd
 *               is 0 and the process has neither CAP_SYS_PTRACE nor access
 *               to /dev/userfaultfd
 *
 * Nothing is left open: the probe's userfaultfd is closed before it returns.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import { native, FEATURE_MOVE } from './native';

/** What probe() found. */
export interface ProbeResult {
  /** tmem can open a swap here. */
  ok: boolean;
  /** When not ok: 'kernel', 'seccomp', 'privileges' or 'unknown'. */
  reason?: 'kernel' | 'seccomp' | 'privileges' | 'unknown';
  /** When not ok: what failed, in words (with the errno). */
  message?: string;
  /** When not ok: what to change. */
  hint?: string;
  /** os.release(), e.g. '6.8.0-45-generic'. */
  kernel: string;
  /** The uffd works only for faults from user code (syscalls reading non-resident region memory get EFAULT). */
  userModeOnly: boolean;
  /** /dev/userfaultfd could be opened (the way tmem gets a full-mode uffd without privileges). */
  devUserfaultfd: boolean;
  /** vm.unprivileged_userfaultfd (0 or 1), null where it cannot be read. */
  unprivilegedUserfaultfd: number | null;
  /** The Seccomp: field of /proc/self/status: 0 none, 1 strict, 2 filter; null where it cannot be read. */
  seccomp: number | null;
  /** UFFD_FEATURE_* names the kernel offers (empty when no uffd could be opened). */
  features: string[];
}

function readNumber(file: string, re?: RegExp): number | null {
  try {
    const text = fs.readFileSync(file, 'utf8');
    const m = re ? re.exec(text) : /^\s*(\d+)/.exec(text);
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

/** The hint for a refused userfaultfd, by cause. */
export function userfaultfdHint(seccomp: number | null): string {
  if (seccomp !== null && seccomp > 0) {
    return (
      'a seccomp filter blocks userfaultfd(2), as the default profiles of Docker and Podman do: run the container with a ' +
      'profile that allows userfaultfd (docker run --security-opt seccomp=PROFILE.json, PROFILE.json being the default ' +
      "profile with 'userfaultfd' added to its allowed syscalls), or pass /dev/userfaultfd into the container " +
      '(--device /dev/userfaultfd, readable and writable by its user): tmem opens it instead of calling userfaultfd(2)'
    );
  }
  return (
    'allow unprivileged userfaultfd (sysctl -w vm.unprivileged_userfaultfd=1), or give the process access to ' +
    '/dev/userfaultfd (Linux 6.1+: chgrp GROUP /dev/userfaultfd && chmod 0660 /dev/userfaultfd), or run it with CAP_SYS_PTRACE'
  );
}

/**
 * Tells whether tmem can run here and, if not, why and how to fix it. Never
 * throws for an environment problem: that is what the result says.
 */
export function probe(): ProbeResult {
  const kernel = os.release();
  const seccomp = readNumber('/proc/self/status', /^Seccomp:\s*(\d+)/m);
  const unprivilegedUserfaultfd = readNumber('/proc/sys/vm/unprivileged_userfaultfd');
  const base = {
    kernel,
    seccomp,
    unprivilegedUserfaultfd,
    userModeOnly: false,
    devUserfaultfd: false,
    features: [] as string[],
  };
  if (process.platform !== 'linux') {
    return {
      ...base,
      ok: false,
      reason: 'kernel',
      message: `tmem needs Linux (userfaultfd), this is ${process.platform}`,
      hint: 'run on Linux 6.8 or later',
    };
  }
  let p;
  try {
    p = native.probe();
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    const code = err.code ?? '';
    if (code === 'ENOSYS' && !(seccomp !== null && seccomp > 0)) {
      return {
        ...base,
        ok: false,
        reason: 'kernel',
        message: `userfaultfd(2) does not exist in this kernel (${kernel}): ENOSYS`,
        hint: 'use a kernel built with CONFIG_USERFAULTFD, Linux 6.8 or later',
      };
    }
    if (code === 'EPERM' || code === 'ENOSYS' || code === 'EACCES') {
      const reason = seccomp !== null && seccomp > 0 ? 'seccomp' : 'privileges';
      return {
        ...base,
        ok: false,
        reason,
        message: `cannot open a userfaultfd: ${err.message}`,
        hint: userfaultfdHint(seccomp),
      };
    }
    return {
      ...base,
      ok: false,
      reason: 'unknown',
      message: `cannot open a userfaultfd: ${err.message}`,
      hint: 'see the message',
    };
  }
  const found = { ...base, userModeOnly: !p.fullMode, devUserfaultfd: p.devUserfaultfd, features: p.featureNames };
  if ((p.features & FEATURE_MOVE) === 0) {
    return {
      ...found,
      ok: false,
      reason: 'kernel',
      message: `the kernel (${kernel}) has no UFFDIO_MOVE, which tmem evicts with`,
      hint: 'use Linux 6.8 or later',
    };
  }
  return { ...found, ok: true };
}

/**
 * Adds the fix to an EPERM/ENOSYS from opening a userfaultfd (same error
 * object, message extended, `hint` set); other errors are returned as they are.
 */
export function withUserfaultfdHint(e: unknown): unknown {
  const err = e as NodeJS.ErrnoException & { hint?: string };
  if (
    !(e instanceof Error) ||
    (err.code !== 'EPERM' && err.code !== 'ENOSYS') ||
    !/userfaultfd/.test(err.syscall ?? err.message)
  )
    return e;
  const seccomp = readNumber('/proc/self/status', /^Seccomp:\s*(\d+)/m);
  err.hint = userfaultfdHint(seccomp);
  err.message = `${err.message}; ${err.hint}`;
  return err;
}
