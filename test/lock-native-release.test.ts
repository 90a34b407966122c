/*
 * lib/tmem/lock.ts against a native holder: native code (native/shared_lock.h) takes a mutex
 * with a CAS and releases it without Atomics.notify (V8 keeps its own waiter list, which no
 * native thread can reach). A JS thread that went to sleep on the word must still get the lock
 * once it is released that way. Run in a child with a hang guard: before lock.ts's waits were
 * timed, the sleeper never woke.
 */
import test from 'ava';
import * as path from 'node:path';
import { runNodeChild } from './helpers/harness';

test('a JS thread sleeping on a mutex gets it when the holder releases it the native way (no notify)', async (t) => {
  const r = await runNodeChild(path.join(__dirname, 'helpers', 'lock-native-release-child.js'), [], 30_000);
  t.is(r.code, 0, r.stderr);
});
