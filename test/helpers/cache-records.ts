/**
 * Deterministic JS records for the cache tests and bench: record(i) is the same object each
 * time it is made (a PRNG seeded by i), with the shape of a service's cached objects: ids,
 * names, nested tags, numbers, a Date and a body of words (compresses about 2-3x with lz4).
 */
const WORDS = (
  'the of and to in is was for on that with as by at from this be are or an it which not have has had ' +
  'request response user session order payment invoice product catalog cache region page fault pool ' +
  'latency memory service account address shipping status pending complete failed retry timeout'
).split(' ');

function rng(seed: number): () => number {
  let s = (seed * 2654435761 + 0x9e3779b9) >>> 0;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 4294967296;
  };
}

export interface CacheRecord {
  id: number;
  name: string;
  email: string;
  score: number;
  active: boolean;
  created: Date;
  tags: string[];
  address: { street: string; city: string; zip: string };
  history: { at: number; status: string; amount: number }[];
  body: string;
}

/** The record numbered `i`; about `bodyWords` words of body (default 300: ~2.5 KB serialized). */
export function record(i: number, bodyWords = 300): CacheRecord {
  const r = rng(i + 1);
  const word = (): string => WORDS[Math.floor(r() * WORDS.length)];
  const body: string[] = [];
  for (let k = 0; k < bodyWords; k++) body.push(word());
  const history = [];
  for (let k = 0, n = Math.floor(r() * 6); k < n; k++)
    history.push({ at: 1.7e12 + Math.floor(r() * 1e9), status: word(), amount: Math.round(r() * 1e6) / 100 });
  return {
    id: i,
    name: `${word()} ${word()}-${i}`,
    email: `user${i}@example.com`,
    score: r(),
    active: r() < 0.5,
    created: new Date(1.7e12 + i * 1000),
    tags: [word(), word(), word()],
    address: { street: `${Math.floor(r() * 999)} ${word()} street`, city: word(), zip: String(10000 + i) },
    history,
    body: body.join(' '),
  };
}
