/**
 * `tmem remote gc <url> [<url> ...] [--prefix P]`: deletes the keys of every swap
 * whose lease lapsed (a process that died with its swap open) from a Redis server,
 * or from a Redis Cluster when more than one URL is given (or --cluster).
 */
import { UsageError } from './args';
import { parseRedisUrl } from '../remote/options';
import { connectClient } from '../remote/client';
import { collectGarbage } from '../remote/gc';

export const REMOTE_HELP = `Usage: tmem remote gc <redis://host:port> [<url> ...] [--cluster] [--prefix P]

Deletes the page keys of every tmem swap whose lease is gone (its process died
without closing it). Swaps that are alive renew their leases and are left alone.
  --cluster    the URLs are nodes of a Redis Cluster (implied by more than one URL)
  --prefix P   the swaps' remote.keyPrefix (default 'tmem:')
`;

export async function runRemote(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === undefined || sub === '--help' || sub === '-h') {
    process.stdout.write(REMOTE_HELP);
    return sub === undefined ? 2 : 0;
  }
  if (sub !== 'gc') throw new UsageError(`unknown remote command '${sub}'; commands: gc`, 'remote');
  const urls: string[] = [];
  let prefix = 'tmem:';
  let cluster = false;
  for (let i = 0; i < rest.length; i++) {
    const a = rest[i];
    if (a === '--prefix') {
      if (rest[i + 1] === undefined) throw new UsageError("option '--prefix' needs a value", 'remote');
      prefix = rest[++i];
    } else if (a === '--cluster') cluster = true;
    else if (a.startsWith('-')) throw new UsageError(`unknown option '${a}'`, 'remote');
    else urls.push(a);
  }
  if (urls.length === 0) throw new UsageError('a redis:// URL is needed', 'remote');
  let seeds;
  try {
    seeds = urls.map((u, i) => parseRedisUrl(u, `URL ${i + 1}`));
  } catch (e) {
    throw new UsageError((e as Error).message, 'remote');
  }
  const client = await connectClient({ cluster: cluster || urls.length > 1, seeds });
  try {
    const r = await collectGarbage(client, prefix);
    process.stdout.write(`deleted ${r.keys} keys of ${r.swaps} dead swaps; ${r.live} live swaps left alone\n`);
    return 0;
  } finally {
    client.disconnect();
  }
}
