/**
 * Page corpora for `tmem bench --corpus SPEC`:
 *
 *   mix                  heap-corpus.ts's heap-like mix (20% zero, ~45% json, ~32% binary, 3% random)
 *   json | text          JSON-like text records only
 *   binary               structured binary records only
 *   zero                 all-zero pages
 *   random               random bytes (incompressible)
 *   json=60,zero=40      a mix of the kinds above, by share (any positive weights)
 *   FILE                 the user's pages: the first --pages pages of FILE (the last one
 *                        zero-padded; a file of fewer than 64 pages is repeated to 64)
 *
 * Deterministic per seed. Single kinds and mixes reuse the heap corpus's page
 * generators (heap-corpus.ts; pages of the wanted kind are taken from its output).
 */
import * as fs from 'node:fs';
import { makeCorpus, PAGE_KINDS, type Corpus } from './heap-corpus';
import { UsageError } from './args';

const PAGE = 4096;
/** Kinds a built-in corpus may hold, as in PAGE_KINDS; 'file' labels a user's non-zero page. */
export const KIND_NAMES = [...PAGE_KINDS, 'file'] as const;
const GENERATORS = ['mix', 'json', 'text', 'binary', 'zero', 'random'];

export interface BenchCorpus {
  corpus: Corpus;
  /** How the corpus was made (for the report). */
  source: string;
  /** Pages by kind (KIND_NAMES). */
  counts: Record<string, number>;
}

function xorshift(seed: number): () => number {
  let s = (seed ^ 0x2545f491) | 0 || 1;
  return () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return s >>> 0;
  };
}

function countsOf(kinds: Uint8Array): Record<string, number> {
  const c: Record<string, number> = {};
  for (const k of kinds) c[KIND_NAMES[k]] = (c[KIND_NAMES[k]] ?? 0) + 1;
  return c;
}

/** Parses 'json=60,zero=40' into weights by kind index; null when `spec` is not a mix. */
function parseMix(spec: string): number[] | null {
  if (!spec.includes('=')) return null;
  const w = [0, 0, 0, 0];
  for (const part of spec.split(',')) {
    const m = /^\s*([a-z]+)\s*=\s*(\d+(?:\.\d+)?)\s*$/.exec(part);
    if (!m)
      throw new UsageError(
        `option '--corpus': cannot read '${part}' in the mix '${spec}'; write kind=weight pairs such as json=60,zero=40 (kinds: json, text, binary, zero, random)`,
      );
    const name = m[1] === 'text' ? 'json' : m[1];
    const k = (PAGE_KINDS as readonly string[]).indexOf(name);
    if (k < 0)
      throw new UsageError(
        `option '--corpus': unknown page kind '${m[1]}' in '${spec}'; kinds: json, text, binary, zero, random`,
      );
    w[k] += Number(m[2]);
  }
  if (!(w.reduce((a, b) => a + b, 0) > 0))
    throw new UsageError(`option '--corpus': the weights of '${spec}' add up to 0`);
  return w;
}

/** `pages` pages whose kinds follow `weights` (index into PAGE_KINDS), shuffled. */
function weighted(pages: number, weights: number[], seed: number): Corpus {
  const total = weights.reduce((a, b) => a + b, 0);
  const want = weights.map((w) => Math.floor((pages * w) / total));
  for (let k = 0, left = pages - want.reduce((a, b) => a + b, 0); left > 0; k = (k + 1) % 4) {
    if (weights[k] > 0) {
      want[k]++;
      left--;
    }
  }
  // Source pages of the generated kinds (json 1, binary 2) from the heap corpus's mix.
  const need = Math.max(want[1] / 0.45, want[2] / 0.32);
  const src = need > 0 ? makeCorpus(Math.ceil(need * 1.15) + 256, seed) : null;
  const pools: number[][] = [[], [], [], []];
  if (src) for (let i = 0; i < src.pages; i++) pools[src.kinds[i]].push(i);
  const kinds = new Uint8Array(pages);
  let at = 0;
  for (let k = 0; k < 4; k++) kinds.fill(k, at, (at += want[k]));
  const rnd = xorshift(seed + 7);
  for (let i = pages - 1; i > 0; i--) {
    const j = rnd() % (i + 1);
    const t = kinds[i];
    kinds[i] = kinds[j];
    kinds[j] = t;
  }
  const data = new Uint8Array(pages * PAGE);
  const used = [0, 0, 0, 0];
  for (let i = 0; i < pages; i++) {
    const k = kinds[i];
    const off = i * PAGE;
    if (k === 1 || k === 2) {
      const from = pools[k][used[k]++];
      if (from === undefined) throw new Error(`corpus: ran out of generated ${PAGE_KINDS[k]} pages`);
      data.set(src!.data.subarray(from * PAGE, from * PAGE + PAGE), off);
    } else if (k === 3) {
      const dv = new DataView(data.buffer, off, PAGE);
      for (let j = 0; j < PAGE; j += 4) dv.setUint32(j, rnd());
    }
  }
  return { data, kinds, pages };
}

function fromFile(file: string, pages: number): Corpus {
  const size = fs.statSync(file).size;
  if (size === 0) throw new UsageError(`option '--corpus': the file '${file}' is empty`);
  const filePages = Math.ceil(size / PAGE);
  const take = Math.min(filePages, pages);
  const n = Math.max(64, take);
  const data = new Uint8Array(n * PAGE);
  const fd = fs.openSync(file, 'r');
  try {
    let off = 0;
    const want = Math.min(size, take * PAGE);
    while (off < want) {
      const r = fs.readSync(fd, data, off, want - off, off);
      if (r <= 0) break;
      off += r;
    }
  } finally {
    fs.closeSync(fd);
  }
  for (let i = take; i < n; i++) data.copyWithin(i * PAGE, (i % take) * PAGE, (i % take) * PAGE + PAGE);
  const kinds = new Uint8Array(n);
  const zero = new Uint8Array(PAGE);
  const buf = Buffer.from(data.buffer);
  for (let i = 0; i < n; i++) kinds[i] = buf.compare(zero, 0, PAGE, i * PAGE, i * PAGE + PAGE) === 0 ? 0 : 4;
  return { data, kinds, pages: n };
}

/** Builds the corpus named by `spec` (see the file header). */
export function buildCorpus(spec: string, pages: number, seed: number): BenchCorpus {
  const s = spec.trim();
  let corpus: Corpus;
  let source: string;
  const mix = parseMix(s);
  if (mix) {
    corpus = weighted(pages, mix, seed);
    source = `mix ${PAGE_KINDS.map((k, i) => (mix[i] > 0 ? `${k}=${mix[i]}` : ''))
      .filter(Boolean)
      .join(',')}`;
  } else if (GENERATORS.includes(s)) {
    if (s === 'mix') corpus = makeCorpus(pages, seed);
    else {
      const k = (PAGE_KINDS as readonly string[]).indexOf(s === 'text' ? 'json' : s);
      corpus = weighted(
        pages,
        PAGE_KINDS.map((_, i) => (i === k ? 1 : 0)),
        seed,
      );
    }
    source = s === 'mix' ? 'mix (heap-like: zero, json, binary, random)' : s;
  } else if (fs.existsSync(s)) {
    if (!fs.statSync(s).isFile()) throw new UsageError(`option '--corpus': '${s}' is not a regular file`);
    corpus = fromFile(s, pages);
    source = `file ${s}`;
  } else {
    throw new UsageError(
      `option '--corpus': '${s}' is neither a generator (${GENERATORS.join(', ')}), a mix such as json=60,zero=40, nor an existing file`,
    );
  }
  return { corpus, source, counts: countsOf(corpus.kinds) };
}
