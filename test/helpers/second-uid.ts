/**
 * Another local user for the attack tests: commands run as uid/gid 65534
 * (nobody) with `setpriv --clear-groups`. Only root can do this; tests that
 * need it say so in their title and pass with a log line elsewhere.
 */
import { spawnSync, spawn, type ChildProcess } from 'node:child_process';

export const OTHER_UID = 65534;

/** Why a second uid is not available here, or null when it is. */
export function noSecondUid(): string | null {
  if (process.getuid?.() !== 0) return 'needs root (to run a second uid with setpriv)';
  const r = spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', 'true']);
  if (r.error || r.status !== 0) return `setpriv does not work here: ${r.error?.message ?? r.stderr.toString()}`;
  return null;
}

const prefix = (uid: number): string[] => [`--reuid=${uid}`, `--regid=${uid}`, '--clear-groups'];

/** Runs `argv` as `uid` to completion; throws with its stderr if it fails. */
export function runAs(argv: string[], uid = OTHER_UID): string {
  const r = spawnSync('setpriv', [...prefix(uid), ...argv], { encoding: 'utf8', timeout: 30000 });
  if (r.error) throw r.error;
  if (r.status !== 0) throw new Error(`${argv.join(' ')} as uid ${uid} failed (${r.status}): ${r.stderr}`);
  return r.stdout;
}

/** Starts `argv` as `uid` (stdio piped). */
export function spawnAs(argv: string[], uid = OTHER_UID, env?: NodeJS.ProcessEnv): ChildProcess {
  return spawn('setpriv', [...prefix(uid), ...argv], { stdio: ['pipe', 'pipe', 'pipe'], env: env ?? process.env });
}
