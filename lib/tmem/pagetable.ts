/*
 * The tmem page index: per object, a radix tree over the 32-bit page index (like the kernel
 * tmem's per-object radix tree), mapping page index -> zpool handle. Nodes come from one node
 * pool in the store's control SharedArrayBuffer, so the memory the index touches grows with what
 * is stored, not with what the store could hold.
 *
 *   tree header (3 words inside the object record)      node n (64 slots, 256 B; count apart)
 *   +------+------+--------+                             +------+------+-----+-------+
 *   | ROOT | BASE | HEIGHT |                             | s0   | s1   | ... | s63   |   COUNT[n]
 *   +------+------+--------+                             +------+------+-----+-------+
 *
 *   HEIGHT h = 0:  ROOT is the handle of the object's only page, BASE its index (no node)
 *   HEIGHT h >= 1: ROOT is a node at level h; the tree covers indexes
 *                  [BASE, BASE + 64^h), BASE a multiple of 64^h (h = 6 covers all 2^32)
 *   a node at level l holds, in slot (index >>> 6(l-1)) & 63, a node of level l-1 (l > 1) or
 *   the page's handle (l = 1, a leaf); 0 = empty. Node ids start at 1.
 *
 *   node pool: BUMP (never-used nodes above it are never touched), FREE list (linked through
 *   slot 0 of free nodes), LOCK (short: taking or giving back nodes), USED
 *
 * An index outside the covered range grows the tree at the top (a new root holds the old one),
 * so an object whose pages sit at 3e9..3e9+100 needs height 2, not 6. Deleting prunes nodes
 * that empty and collapses a root left with one child (down to height 0).
 *
 * Cost: a dense run of pages costs 260 B per 64 pages in leaves plus ~1/64 of that above,
 * i.e. ~4.1 B of index per stored page; a one-page object costs no node; scattered pages cost
 * up to one leaf (and its path) each. Nodes are taken by bump first, so untouched capacity
 * stays untouched.
 *
 * Locks: a tree is read and changed only under its object's stripe lock (so lookups take no
 * other lock); the node pool LOCK is taken inside a stripe lock, never the other way round.
 * Invariants (stripe lock held): COUNT[n] = non-zero slots of node n; no node in a tree has
 * COUNT 0; a root at height >= 1 has COUNT >= 2 once a delete has run on it (a put may leave a
 * grown root with one child); a free node is zero except slot 0 and COUNT 0.
 */

import { lock, unlock } from './lock';

/** Words of a tree header. */
export const TREE_WORDS = 3;
const T_ROOT = 0,
  T_BASE = 1,
  T_HEIGHT = 2;
/** log2(slots per node). */
export const NODE_BITS = 6;
/** Slots (words) per node. */
export const NODE_SLOTS = 1 << NODE_BITS;
const MASK = NODE_SLOTS - 1;
/** Levels of a tree that covers all 2^32 indexes. */
export const MAX_HEIGHT = 6;
/** Most nodes a pool may have (its words must stay below 2^31). */
export const MAX_NODES = (1 << 23) - 1;
/** Node pool header words (inside the control buffer, at `pw`). */
export const NP_LOCK = 0,
  NP_FREE = 1,
  NP_BUMP = 2,
  NP_MAX = 3,
  NP_USED = 4;

/** Words a node pool of `maxNodes` nodes needs for its COUNT array and its nodes (node 0 unused). */
export function nodePoolWords(maxNodes: number): { counts: number; nodes: number } {
  return { counts: maxNodes + 1, nodes: (maxNodes + 1) * NODE_SLOTS };
}

/** Format a zero-filled node pool (header at `pw`). */
export function formatNodePool(c: Int32Array, pw: number, maxNodes: number): void {
  c[pw + NP_FREE] = 0;
  c[pw + NP_BUMP] = 1;
  c[pw + NP_MAX] = maxNodes;
  c[pw + NP_USED] = 0;
}

/**
 * One thread's view of the node pool and the trees built from it. Holds per-thread scratch
 * (the path of the last descent, a chain of nodes being freed), so it allocates nothing per call.
 */
export class RadixIndex {
  private readonly c: Int32Array;
  /** Word of the node pool header. */
  private readonly pw: number;
  /** Word of COUNT[0]. */
  private readonly cnt: number;
  /** Word of node 0's slot 0. */
  private readonly nb: number;
  private readonly path = new Int32Array(MAX_HEIGHT + 1);
  private chainHead = 0;
  private chainTail = 0;
  private chainLen = 0;

  constructor(c: Int32Array, pw: number, cnt: number, nb: number) {
    this.c = c;
    this.pw = pw;
    this.cnt = cnt;
    this.nb = nb;
  }

  /** Nodes in use and the most there may be. */
  nodes(): { used: number; max: number; touched: number } {
    const c = this.c;
    return {
      used: Atomics.load(c, this.pw + NP_USED),
      max: c[this.pw + NP_MAX],
      touched: Atomics.load(c, this.pw + NP_BUMP) - 1,
    };
  }

  // ---------------------------------------------------------------- node pool

  /** Take a zeroed node; 0 when the pool is exhausted. */
  private alloc(): number {
    const c = this.c,
      pw = this.pw;
    lock(c, pw + NP_LOCK);
    let n = c[pw + NP_FREE];
    if (n !== 0) {
      const w = this.nb + n * NODE_SLOTS;
      c[pw + NP_FREE] = c[w];
      c[w] = 0;
    } else if (c[pw + NP_BUMP] <= c[pw + NP_MAX]) {
      n = c[pw + NP_BUMP]++;
    }
    if (n !== 0) c[pw + NP_USED]++;
    unlock(c, pw + NP_LOCK);
    return n;
  }

  /** Queue an empty node (all slots 0, COUNT 0) for `release`. */
  private retire(n: number): void {
    this.c[this.nb + n * NODE_SLOTS] = this.chainHead;
    if (this.chainHead === 0) this.chainTail = n;
    this.chainHead = n;
    this.chainLen++;
  }

  /** Give the queued nodes back to the pool in one lock. */
  private release(): void {
    if (this.chainLen === 0) return;
    const c = this.c,
      pw = this.pw;
    lock(c, pw + NP_LOCK);
    c[this.nb + this.chainTail * NODE_SLOTS] = c[pw + NP_FREE];
    c[pw + NP_FREE] = this.chainHead;
    c[pw + NP_USED] -= this.chainLen;
    unlock(c, pw + NP_LOCK);
    this.chainHead = 0;
    this.chainTail = 0;
    this.chainLen = 0;
  }

  // ---------------------------------------------------------------- trees (stripe lock held)

  /** Handle of page `idx` in the tree at `th`, or 0. */
  get(th: number, idx: number): number {
    const c = this.c;
    const root = c[th + T_ROOT];
    if (root === 0) return 0;
    const h = c[th + T_HEIGHT];
    if (h < MAX_HEIGHT && idx >>> (NODE_BITS * h) !== c[th + T_BASE] >>> (NODE_BITS * h)) return 0;
    if (h === 0) return root;
    const nb = this.nb;
    let n = root;
    for (let l = h; l > 1; l--) {
      n = c[nb + n * NODE_SLOTS + ((idx >>> (NODE_BITS * (l - 1))) & MASK)];
      if (n === 0) return 0;
    }
    return c[nb + n * NODE_SLOTS + (idx & MASK)];
  }

  /** Add a level above the root; false when no node is left. */
  private grow(th: number): boolean {
    const c = this.c;
    const n = this.alloc();
    if (n === 0) return false;
    const h = c[th + T_HEIGHT];
    const base = c[th + T_BASE];
    c[this.nb + n * NODE_SLOTS + ((base >>> (NODE_BITS * h)) & MASK)] = c[th + T_ROOT];
    c[this.cnt + n] = 1;
    c[th + T_ROOT] = n;
    c[th + T_HEIGHT] = h + 1;
    c[th + T_BASE] = h + 1 >= MAX_HEIGHT ? 0 : (base >>> (NODE_BITS * (h + 1))) << (NODE_BITS * (h + 1));
    return true;
  }

  /**
   * Set page `idx` to handle `hd` (> 0). Returns the handle it replaced, 0 if the page is new,
   * or -1 if no node was left for it (the tree then holds what it held).
   */
  set(th: number, idx: number, hd: number): number {
    const c = this.c;
    if (c[th + T_ROOT] === 0) {
      c[th + T_ROOT] = hd;
      c[th + T_BASE] = idx;
      c[th + T_HEIGHT] = 0;
      return 0;
    }
    for (;;) {
      const h = c[th + T_HEIGHT];
      if (h >= MAX_HEIGHT || idx >>> (NODE_BITS * h) === c[th + T_BASE] >>> (NODE_BITS * h)) break;
      if (!this.grow(th)) return -1;
    }
    const h = c[th + T_HEIGHT];
    if (h === 0) {
      const old = c[th + T_ROOT];
      c[th + T_ROOT] = hd;
      return old;
    }
    const nb = this.nb,
      cnt = this.cnt,
      path = this.path;
    let n = c[th + T_ROOT];
    path[0] = n;
    for (let l = h, k = 1; l > 1; l--, k++) {
      const w = nb + n * NODE_SLOTS + ((idx >>> (NODE_BITS * (l - 1))) & MASK);
      let m = c[w];
      if (m === 0) {
        m = this.alloc();
        if (m === 0) {
          this.prune(th, idx, k - 1);
          this.release();
          return -1;
        }
        c[w] = m;
        c[cnt + n]++;
      }
      path[k] = m;
      n = m;
    }
    const w = nb + n * NODE_SLOTS + (idx & MASK);
    const old = c[w];
    c[w] = hd;
    if (old === 0) c[cnt + n]++;
    return old;
  }

  /** Remove page `idx`; returns its handle, or 0 if absent. */
  delete(th: number, idx: number): number {
    const c = this.c;
    const root = c[th + T_ROOT];
    if (root === 0) return 0;
    const h = c[th + T_HEIGHT];
    if (h < MAX_HEIGHT && idx >>> (NODE_BITS * h) !== c[th + T_BASE] >>> (NODE_BITS * h)) return 0;
    if (h === 0) {
      c[th + T_ROOT] = 0;
      return root;
    }
    const nb = this.nb,
      path = this.path;
    let n = root;
    path[0] = n;
    let k = 0;
    for (let l = h; l > 1; l--) {
      n = c[nb + n * NODE_SLOTS + ((idx >>> (NODE_BITS * (l - 1))) & MASK)];
      if (n === 0) return 0;
      path[++k] = n;
    }
    const w = nb + n * NODE_SLOTS + (idx & MASK);
    const old = c[w];
    if (old === 0) return 0;
    c[w] = 0;
    c[this.cnt + n]--;
    this.prune(th, idx, k);
    this.collapse(th);
    this.release();
    return old;
  }

  /**
   * Free the empty nodes at the bottom of path[0..k] (the path of `idx`), clearing their slots
   * above; frees the root too (tree empty) when it empties.
   */
  private prune(th: number, idx: number, k: number): void {
    const c = this.c,
      nb = this.nb,
      cnt = this.cnt,
      path = this.path;
    const h = c[th + T_HEIGHT];
    for (let i = k; i >= 0; i--) {
      const n = path[i];
      if (c[cnt + n] !== 0) return;
      this.retire(n);
      if (i === 0) {
        c[th + T_ROOT] = 0;
        return;
      }
      const p = path[i - 1];
      // p is at level h - (i - 1): its slot for idx
      c[nb + p * NODE_SLOTS + ((idx >>> (NODE_BITS * (h - i))) & MASK)] = 0;
      c[cnt + p]--;
    }
  }

  /** While the root has one child, make that child the root (down to a lone handle). */
  private collapse(th: number): void {
    const c = this.c,
      nb = this.nb,
      cnt = this.cnt;
    for (;;) {
      const root = c[th + T_ROOT];
      const h = c[th + T_HEIGHT];
      if (root === 0 || h === 0 || c[cnt + root] !== 1) return;
      const w = nb + root * NODE_SLOTS;
      let s = 0;
      while (c[w + s] === 0) s++;
      const child = c[w + s];
      c[w + s] = 0;
      c[cnt + root] = 0;
      this.retire(root);
      // base + s * 64^(h-1), as an unsigned 32-bit value stored in an Int32 word
      c[th + T_BASE] = ((c[th + T_BASE] >>> 0) + s * 2 ** (NODE_BITS * (h - 1))) | 0;
      c[th + T_ROOT] = child;
      c[th + T_HEIGHT] = h - 1;
    }
  }

  /**
   * Empty the tree at `th`: pushes every handle to `out` (unless null), frees every node.
   * Returns the number of pages it held.
   */
  drain(th: number, out: number[] | null): number {
    const c = this.c;
    const root = c[th + T_ROOT];
    if (root === 0) return 0;
    const h = c[th + T_HEIGHT];
    c[th + T_ROOT] = 0;
    if (h === 0) {
      if (out) out.push(root);
      return 1;
    }
    const n = this.drainNode(root, h, out);
    this.release();
    return n;
  }

  /**
   * Check the tree at `th` (tests): COUNTs match, no empty node, the covered range holds every
   * page. Returns [pages, nodes]; throws on a broken invariant.
   */
  check(th: number): [number, number] {
    const c = this.c;
    const root = c[th + T_ROOT];
    if (root === 0) return [0, 0];
    const h = c[th + T_HEIGHT];
    if (h < 0 || h > MAX_HEIGHT) throw new Error(`radix: height ${h}`);
    if (h === 0) return [1, 0];
    const base = c[th + T_BASE] >>> 0;
    if (h < MAX_HEIGHT && base % 2 ** (NODE_BITS * h) !== 0)
      throw new Error(`radix: base ${base} not aligned to height ${h}`);
    if (h === MAX_HEIGHT && base !== 0) throw new Error(`radix: base ${base} at full height`);
    const out: [number, number] = [0, 0];
    this.checkNode(root, h, out);
    return out;
  }

  private checkNode(n: number, l: number, out: [number, number]): void {
    const c = this.c;
    if (!(n >= 1 && n < c[this.pw + NP_BUMP])) throw new Error(`radix: node ${n} out of the pool`);
    let k = 0;
    for (let s = 0; s < NODE_SLOTS; s++) {
      const v = c[this.nb + n * NODE_SLOTS + s];
      if (v === 0) continue;
      k++;
      if (l === 1) out[0]++;
      else this.checkNode(v, l - 1, out);
    }
    if (k === 0 || k !== c[this.cnt + n])
      throw new Error(`radix: node ${n} holds ${k} slots, COUNT ${c[this.cnt + n]}`);
    out[1]++;
  }

  private drainNode(n: number, l: number, out: number[] | null): number {
    const c = this.c;
    const w = this.nb + n * NODE_SLOTS;
    let pages = 0;
    for (let s = 0, left = c[this.cnt + n]; s < NODE_SLOTS && left > 0; s++) {
      const v = c[w + s];
      if (v === 0) continue;
      c[w + s] = 0;
      left--;
      if (l === 1) {
        if (out) out.push(v);
        pages++;
      } else pages += this.drainNode(v, l - 1, out);
    }
    c[this.cnt + n] = 0;
    this.retire(n);
    return pages;
  }
}
