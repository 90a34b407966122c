/**
 * A FIFO of (region id, page) entries with lazy deletion, in typed arrays.
 *
 *   ring:  region[] | page[] | stamp[]      head .. head+len-1 (mod capacity)
 *
 * An entry is live iff the caller's per-page stamp still equals the entry's
 * stamp (and the page is in the state the FIFO is for): a page that leaves and
 * comes back gets a new stamp, so the old entry is skipped when popped. The
 * ring doubles when full; nothing is allocated per push.
 */
export class PageFifo {
  private cap = 1024;
  private region = new Int32Array(this.cap);
  private pg = new Uint32Array(this.cap);
  private stamp = new Int32Array(this.cap);
  private head = 0;
  length = 0;
  /** Set by shift(). */
  outRegion = 0;
  outPage = 0;
  outStamp = 0;

  push(regionId: number, page: number, stamp: number): void {
    if (this.length === this.cap) this.grow();
    const j = (this.head + this.length) % this.cap;
    this.region[j] = regionId;
    this.pg[j] = page;
    this.stamp[j] = stamp;
    this.length++;
  }

  /** Reads the oldest entry into out* without removing it; false if empty. */
  peek(): boolean {
    if (this.length === 0) return false;
    const j = this.head;
    this.outRegion = this.region[j];
    this.outPage = this.pg[j];
    this.outStamp = this.stamp[j];
    return true;
  }

  /** Pops the oldest entry into out*; false if empty. */
  shift(): boolean {
    if (this.length === 0) return false;
    const j = this.head;
    this.outRegion = this.region[j];
    this.outPage = this.pg[j];
    this.outStamp = this.stamp[j];
    this.head = (this.head + 1) % this.cap;
    this.length--;
    return true;
  }

  /**
   * Drops dead entries, keeping the order: `live(region, page, stamp)` says
   * which stay. Called when dead entries outnumber live ones, so that pages
   * that come and go often cannot grow the ring without bound.
   */
  compact(live: (regionId: number, page: number, stamp: number) => boolean): void {
    let w = 0;
    for (let i = 0; i < this.length; i++) {
      const j = (this.head + i) % this.cap;
      if (!live(this.region[j], this.pg[j], this.stamp[j])) continue;
      const k = (this.head + w) % this.cap;
      this.region[k] = this.region[j];
      this.pg[k] = this.pg[j];
      this.stamp[k] = this.stamp[j];
      w++;
    }
    this.length = w;
  }

  private grow(): void {
    const cap = this.cap * 2;
    const r = new Int32Array(cap),
      p = new Uint32Array(cap),
      s = new Int32Array(cap);
    for (let i = 0; i < this.length; i++) {
      const j = (this.head + i) % this.cap;
      r[i] = this.region[j];
      p[i] = this.pg[j];
      s[i] = this.stamp[j];
    }
    this.region = r;
    this.pg = p;
    this.stamp = s;
    this.cap = cap;
    this.head = 0;
  }
}
