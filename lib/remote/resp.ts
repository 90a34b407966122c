/**
 * RESP2 request encoding into one reusable buffer: a pipeline of commands is
 * built here and sent with one RemoteConn.exchange() (native/resp_conn.h).
 *
 *   enc.reset(); enc.command(['SET', key, value]); enc.command(['GET', key]); ...
 *   conn.exchange(enc.buf, enc.length, enc.commands, ...)
 *
 * Arguments are strings (keys and verbs: ASCII, written as latin1) or byte arrays.
 */
export class RespEncoder {
  buf = new Uint8Array(256 * 1024);
  length = 0;
  commands = 0;

  reset(): void {
    this.length = 0;
    this.commands = 0;
  }

  private room(n: number): void {
    if (this.length + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.length + n) size *= 2;
    const b = new Uint8Array(size);
    b.set(this.buf.subarray(0, this.length));
    this.buf = b;
  }

  private ascii(s: string): void {
    this.room(s.length);
    const b = this.buf;
    let at = this.length;
    for (let i = 0; i < s.length; i++) b[at++] = s.charCodeAt(i);
    this.length = at;
  }

  /** Appends one command. */
  command(args: readonly (string | Uint8Array)[]): void {
    this.ascii(`*${args.length}\r\n`);
    for (const a of args) {
      if (typeof a === 'string') {
        this.ascii(`$${a.length}\r\n`);
        this.ascii(a);
      } else {
        this.ascii(`$${a.length}\r\n`);
        this.room(a.length);
        this.buf.set(a, this.length);
        this.length += a.length;
      }
      this.ascii('\r\n');
    }
    this.commands++;
  }
}
