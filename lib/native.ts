/**
 * The raw native binding (native/binding.cc), typed and documented.
 *
 * Each call says which syscall or ioctl it is. Addresses are Numbers (user
 * addresses fit in 53 bits). Arguments are checked before any syscall: a bad
 * one throws TypeError/RangeError naming it. A failed syscall throws an Error
 * with `code` ('EINVAL'), `errno` and `syscall` ('ioctl(UFFDIO_COPY)').
 *
 * This is the layer the dispatcher is built on; programs use `open()` from
 * the package root instead.
 */
import * as path from 'node:path';

/** UFFD_EVENT_* kinds as read(). */
export const UFFD_EVENT_PAGEFAULT = 0x12;
export const UFFD_EVENT_FORK = 0x13;
export const UFFD_EVENT_REMAP = 0x14;
export const UFFD_EVENT_REMOVE = 0x15;
export const UFFD_EVENT_UNMAP = 0x16;
/** UFFD_PAGEFAULT_FLAG_* in a page-fault event's flags. */
export const PAGEFAULT_FLAG_WRITE = 1;
export const PAGEFAULT_FLAG_WP = 2;
export const PAGEFAULT_FLAG_MINOR = 4;
/** UFFDIO_REGISTER_MODE_*. */
export const REGISTER_MODE_MISSING = 1;
export const REGISTER_MODE_WP = 2;
/** Flags for copy(): UFFDIO_COPY_MODE_DONTWAKE, and leave the page write-protected (UFFDIO_COPY_MODE_WP). */
export const COPY_DONTWAKE = 1;
export const COPY_WP = 2;
/** Flags for move(): UFFDIO_MOVE_MODE_DONTWAKE, UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES. */
export const MOVE_DONTWAKE = 1;
export const MOVE_ALLOW_SRC_HOLES = 2;
/** UFFD_FEATURE_* bits. */
export const FEATURE_EVENT_FORK = 1 << 1;
export const FEATURE_EVENT_REMAP = 1 << 2;
export const FEATURE_EVENT_REMOVE = 1 << 3;
export const FEATURE_EVENT_UNMAP = 1 << 6;
export const FEATURE_THREAD_ID = 1 << 8;
export const FEATURE_POISON = 1 << 14;
export const FEATURE_MOVE = 1 << 16;
/** madvise advice values accepted by madvise(). */
export const MADV_WILLNEED = 3;
export const MADV_DONTNEED = 4;
export const MADV_COLD = 20;
export const MADV_PAGEOUT = 21;
/** Slots per event in read()'s output. */
export const EVENT_SLOTS = 4;
export const PAGE_SIZE = 4096;

/** What the kernel offers: a throwaway UFFDIO_API with features = 0. */
export interface UffdProbe {
  /** UFFD_FEATURE_* bits the kernel supports. */
  features: number;
  /** Names of those bits ('THREAD_ID', 'MOVE', ...). */
  featureNames: string[];
  /** 1 << _UFFDIO_* ioctls on the fd (bit 63, _UFFDIO_API, left out). */
  ioctls: number;
  /** Their names: 'REGISTER', 'UNREGISTER', 'API', ... */
  ioctlNames: string[];
  /** /dev/userfaultfd could be opened. */
  devUserfaultfd: boolean;
  /** A uffd that also sees kernel-mode faults could be opened. */
  fullMode: boolean;
}

/** What a Worker needs to use a uffd opened elsewhere (structured-cloneable). */
export interface UffdDescriptor {
  fd: number;
  features: number;
  ioctls: number;
  userModeOnly: boolean;
  viaDev: boolean;
}

/** One userfaultfd plus the doorbell that wakes its reader (see native/uffd.cc). */
export interface Uffd {
  /** The uffd file descriptor; -1 once closed. */
  readonly fd: number;
  readonly closed: boolean;
  /** fd and negotiated features; pass it to `Uffd.attach` in a Worker of this process. */
  describe(): UffdDescriptor;
  /**
   * read(2) a batch of uffd_msg (blocking; poll() first when timeoutMs >= 0).
   * Fills `out` with 4 slots per event: kind, flags (REMAP: length), address,
   * arg (page fault: thread id; REMAP: new address; REMOVE/UNMAP: end; FORK: fd).
   * Returns the number of events, 0 on timeout, -1 when woken by wakeReader().
   * @param timeoutMs -1 blocks (default), 0 polls.
   */
  read(out: Float64Array, timeoutMs?: number): number;
  /** Rings the doorbell: the current or next read() returns -1 (from any thread). */
  wakeReader(): void;
  /**
   * ioctl(UFFDIO_COPY) of `length` bytes (default one page) from src at srcOffset
   * to dst. EEXIST counts as success (and wakes the faulter). Returns bytes
   * copied, or -11 (EAGAIN: drain events and retry) or -3 (ESRCH: faulter gone).
   * @param flags COPY_DONTWAKE | COPY_WP
   */
  copy(
    dst: number,
    src: ArrayBufferView | ArrayBuffer | SharedArrayBuffer,
    srcOffset?: number,
    flags?: number,
    length?: number,
  ): number;
  /**
   * The fault path of a stored page in one call: decode a stored object
   * (lib/compress.ts format: 4096 bytes is a raw page, else byte 0 is the codec:
   * 1 LZ4 block via liblz4, 2 zstd frame via libzstd, 3 raw) into a per-thread
   * staging page, then ioctl(UFFDIO_COPY) it to dst. Returns as copy().
   * @throws Error if the object does not decode to exactly one page
   */
  copyObject(
    dst: number,
    src: ArrayBufferView | ArrayBuffer | SharedArrayBuffer,
    srcOffset: number,
    srcLength: number,
    flags?: number,
  ): number;
  /** ioctl(UFFDIO_ZEROPAGE): map the zero page. Returns bytes, or -EAGAIN / -ESRCH. */
  zeropage(dst: number, length: number, flags?: number): number;
  /**
   * ioctl(UFFDIO_MOVE): move pages between two ranges registered with this
   * uffd, emptying the source PTEs atomically. Returns bytes moved or -errno
   * (-2 ENOENT: hole at src, -16 EBUSY: page not exclusive, -17 EEXIST: dst
   * populated, -11 EAGAIN, -3 ESRCH).
   * @param flags MOVE_DONTWAKE | MOVE_ALLOW_SRC_HOLES
   */
  move(dst: number, src: number, length: number, flags?: number): number;
  /**
   * Makes the present pages of the range exclusive to this process again without
   * changing a byte and without blocking (native/memory.h unshare_pages: the kernel
   * adds 0 to a word of each page, futex FUTEX_WAKE_OP waking nobody). After a fork
   * the process's resident pages are shared copy-on-write until written, and
   * UFFDIO_MOVE refuses them with EBUSY. A missing or write-protected page is
   * never waited for: -14 (EFAULT). Returns bytes made exclusive, or -errno.
   */
  unshare(address: number, length: number): number;
  /** ioctl(UFFDIO_WAKE): wake threads waiting on faults in the range. */
  wake(address: number, length: number): void;
  /** ioctl(UFFDIO_WRITEPROTECT): set or clear write protection. */
  writeProtect(address: number, length: number, protect: boolean, flags?: number): void;
  /** ioctl(UFFDIO_POISON): later touches raise SIGBUS. Returns bytes or -errno. */
  poison(address: number, length: number): number;
  /**
   * Called by the dispatcher in its own thread: if that thread's environment
   * ends before disarmDeadman() (the Worker crashed or was terminated), a
   * native thread takes over the uffd and turns every further fault into a
   * message on stderr and SIGBUS in the faulting thread, never a hang.
   */
  armDeadman(why?: string): void;
  /** The dispatcher is stopping on purpose. */
  disarmDeadman(): void;
  /** close(2) the uffd (owning instance only); stops the deadman and the doorbell. */
  close(): void;
}

export interface UffdConstructor {
  /**
   * open("/dev/userfaultfd") + ioctl(USERFAULTFD_IOC_NEW), else userfaultfd(2);
   * then ioctl(UFFDIO_API) with THREAD_ID, PAGEFAULT_FLAG_WP, MOVE, POISON where
   * offered, plus `features`.
   * @param mode 0 auto (full if permitted, else user-mode-only), 1 full, 2 user-mode-only
   * @param features extra UFFD_FEATURE_* bits, e.g. FEATURE_EVENT_REMOVE
   */
  new (mode?: number, features?: number): Uffd;
  /** A non-owning Uffd over a descriptor from describe(), for use in a Worker. */
  attach(descriptor: UffdDescriptor): Uffd;
}

/** Anonymous memory registered with a uffd, exposed as an ArrayBuffer. */
export interface Region {
  readonly address: number;
  readonly size: number;
  readonly closed: boolean;
  /** The range ioctls UFFDIO_REGISTER reported for this region: 'WAKE', 'COPY', 'ZEROPAGE', 'MOVE', 'WRITEPROTECT', ... */
  readonly ioctls: string[];
  /**
   * An external ArrayBuffer over the region. The memory stays mapped while any
   * ArrayBuffer over it is reachable; close() detaches those handed out here.
   */
  readonly buffer: ArrayBuffer;
  /**
   * Inline regions: the address of the forward area (2 * size bytes registered MISSING
   * with the uffd) through which the SIGBUS handler hands faults to the dispatcher
   * (native/inline_fault.h); 0 for other regions.
   */
  readonly forwardAddress: number;
  /**
   * ioctl(UFFDIO_UNREGISTER), wake any waiter, madvise(MADV_DONTNEED), detach
   * every ArrayBuffer; munmap(2) when the last one is collected.
   */
  close(): void;
}

export interface RegionConstructor {
  /**
   * mmap(MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE) + ioctl(UFFDIO_REGISTER).
   * If registering fails the memory is unmapped: nothing is half-registered.
   * @param size bytes, a positive multiple of 4096
   * @param mode REGISTER_MODE_MISSING (default) | REGISTER_MODE_WP
   * @param inline registered with the uffd's SIGBUS sibling (created on first use): a fault
   *   raises SIGBUS in the faulting thread, whose handler forwards it (native/inline_fault.h);
   *   resolve calls on `uffd` reach the sibling for addresses of such regions
   */
  new (uffd: Uffd, size: number, mode?: number, inline?: boolean): Region;
}

/** FileIo job kinds, as take() reports them. */
export const FILEIO_READ = 0;
export const FILEIO_WRITE = 1;
export const FILEIO_SYNC = 2;

/**
 * Mapped-file I/O off the thread that serves faults (native/file_io.h): a
 * writer thread (pwrite, clipped to the file's current size, and fdatasync, in
 * order) and a reader thread (pread), whose completions ring the reader of the
 * uffd given to the constructor. Jobs copy their bytes; files are dup()ed.
 */
export interface FileIo {
  /** fcntl(F_DUPFD_CLOEXEC) of fd; returns a handle for the other calls. */
  openFile(fd: number): number;
  /** Drops the handle; its descriptor is closed when no queued job needs it. */
  closeFile(handle: number): void;
  /** Queues pwrite of `length` (<= 4096) bytes of src (copied now) at `position`. Returns the job id. */
  write(
    handle: number,
    src: ArrayBufferView | ArrayBuffer | SharedArrayBuffer,
    srcOffset: number,
    length: number,
    position: number,
  ): number;
  /** Queues fdatasync behind the writes queued before it. Returns the job id. */
  sync(handle: number): number;
  /** Queues pread of `length` (<= 4096) bytes at `position` on the reader thread. Returns the job id. */
  read(handle: number, length: number, position: number): number;
  /**
   * preadv2(RWF_NOWAIT) now, in the calling thread: bytes read (short only at
   * end of file) or -errno: -11 (EAGAIN) when it would wait for I/O or a lock,
   * -95 (EOPNOTSUPP) when the filesystem cannot say.
   */
  tryRead(
    handle: number,
    dst: ArrayBufferView | ArrayBuffer | SharedArrayBuffer,
    dstOffset: number,
    length: number,
    position: number,
  ): number;
  /** The next completion into out ([id, FILEIO_*, bytes or -errno]); a read's bytes into dst at dstOffset. False if none. */
  take(out: Float64Array, dst: ArrayBufferView | ArrayBuffer | SharedArrayBuffer, dstOffset: number): boolean;
  /** The file's identity now (device, inode, size, mtime, ctime) as a 64-bit key [lo, hi]; [0, 0] if statx failed. */
  identityKey(handle: number): [number, number];
  /** statx of the file against its last snapshot (size, mtime, ctime, inode, device): the generation, bumped when someone else changed it. */
  generation(handle: number): number;
  /** Jobs queued, running or not yet taken. */
  readonly pending: number;
  /** Stops the threads (a thread inside a syscall finishes it alone); queued jobs are dropped. */
  close(): void;
}

/** StoreReader.lookup results other than a length. */
export const STORE_ABSENT = -1;
/** A lock of the store was held (or the pool is being destroyed): ask the JS store instead. */
export const STORE_BUSY = -2;
/** The shared state does not describe a sound store entry; nothing outside the buffers was read. */
export const STORE_BAD = -3;

/**
 * A native read-only reader of a lib/tmem Store's SharedArrayBuffers
 * (native/store_reader.h): the same bytes `Store.get` returns, with no JS.
 * It only ever tries the store's locks and answers STORE_BUSY when one is held.
 */
export interface StoreReader {
  /** Copies page `index` of object (o0, o1, o2) of `pool` into dst: its length, or STORE_ABSENT/BUSY/BAD. */
  lookup(pool: number, o0: number, o1: number, o2: number, index: number, dst: Uint8Array): number;
  /** The same, decoded (lib/compress.ts format) into the 4096-byte `page`: 4096, or STORE_ABSENT/BUSY/BAD. */
  lookupPage(pool: number, o0: number, o1: number, o2: number, index: number, page: Uint8Array): number;
}

/**
 * A blocking connection to a Redis server (native/resp_conn.h), owned by the thread that made it.
 * Results are negative errnos on failure (the connection is then closed).
 */
/** A shared pool's figures for the whole group (SharedStore.group()). */
export interface SharedGroupNative {
  members: number;
  heldBytes: number;
  puts: number;
  hits: number;
  misses: number;
  duplicates: number;
  bad: number;
  logBytesWritten: number;
  lockSteals: number;
  /**
   * The segment's counters (native/shared_pool.h): index entries written and not yet replaced
   * or overwritten by the ring, and their records' bytes; exact until the ring wraps, then at
   * most a chunk (1/254 of the ring) of records over.
   */
  storedPages: number;
  storedBytes: number;
}

/**
 * One process's attachment to a shared pool (native/shared_pool.h): a System V segment of
 * the user's, holding compressed clean pages of files keyed by the file's identity.
 */
export interface SharedStore {
  /** 1: the page is in dst (4096 bytes, checked); 0: a miss; -1: a record that failed its checks. */
  get(keyLo: number, keyHi: number, page: number, dst: Uint8Array): number;
  /** 1: stored; 2: already there (nothing written); 0: the lock could not be had (not stored). */
  put(keyLo: number, keyHi: number, page: number, src: Uint8Array, offset: number): number;
  /** What this member holds of its own memory, for the group's budget. */
  publishHeld(bytes: number): void;
  /** What the other live members hold. */
  othersHeld(): number;
  /** Frees the slots of members that died; returns how many. */
  reclaimDead(): number;
  group(): SharedGroupNative;
  /**
   * A scan of the whole index (1/16 of the segment, on the calling thread): valid entries,
   * their bytes, and (key, page) pairs stored twice. For tests and `tmem stats --audit`.
   */
  audit(): { entries: number; bytes: number; duplicates: number };
  /** Bytes of the segment in use (header, index, the ring written so far). */
  usedBytes(): number;
  readonly size: number;
  readonly shmId: number;
  close(): void;
  /** Tests: take the lock and keep it (the caller is then killed). */
  lockForTest(): boolean;
  /** Tests: die (SIGKILL from inside) at stage 1, 2 or 3 of a put. */
  putAndDieForTest(keyLo: number, keyHi: number, page: number, src: Uint8Array, stage: number): void;
  /** Tests: a hostile member writes `writes` runs of random bytes over the segment. */
  scribbleForTest(seed: number, writes: number): void;
}

export interface RemoteConn {
  /** Connects within timeoutMs: 0, or -errno. */
  connect(timeoutMs: number): number;
  /**
   * Sends req[0..len) and reads n replies (not arrays) within timeoutMs: n, or -errno
   * (-ETIMEDOUT, -ECONNRESET, -EPROTO for bytes that are not RESP, -ENOBUFS).
   * Per reply i: info[3i] kind (REPLY_*), info[3i+1] offset of its bytes in out, info[3i+2] their length.
   */
  exchange(req: Uint8Array, len: number, n: number, timeoutMs: number, out: Uint8Array, info: Int32Array): number;
  /** exchange()'s first half: sends req[0..len), n replies due within timeoutMs. 0, or -errno. */
  send(req: Uint8Array, len: number, n: number, timeoutMs: number): number;
  /**
   * exchange()'s second half: parses what has arrived into out/info (the same buffers until it
   * completes). n when all n replies are in; 0 not yet (never with `wait`); -errno (-ETIMEDOUT
   * past the deadline).
   */
  receive(out: Uint8Array, info: Int32Array, wait: boolean): number;
  close(): void;
  readonly connected: boolean;
  /** Replies are due: send() done, receive() not complete. */
  readonly busy: boolean;
}
/** RemoteConn reply kinds. */
export const REPLY_SIMPLE = 1,
  REPLY_ERROR = 2,
  REPLY_INTEGER = 3,
  REPLY_BULK = 4,
  REPLY_NIL = 5;

/** A region as the native fault path sees it (lib/dispatcher/regions.ts RegionShare). */
export interface FaultRegionShare {
  id: number;
  base: number;
  pages: number;
  state: SharedArrayBuffer;
  aux: SharedArrayBuffer;
}

/** new FaultServer(options): what native/fault_serve.h needs of one swap. */
export interface FaultServerOptions {
  uffd: UffdDescriptor;
  staging: { address: number; slots: number; table: SharedArrayBuffer };
  /** The store (Store.handle()); absent: stored pages are forwarded to JS. */
  store?: {
    arena: { control: SharedArrayBuffer; chunks: readonly SharedArrayBuffer[] };
    control: SharedArrayBuffer;
    metas: readonly SharedArrayBuffer[];
  };
  frontswapPool?: number;
  /** The served-record ring (docs/layout.md; lib/dispatcher/native-faults.ts lays it out). */
  ring: SharedArrayBuffer;
  /** Start the native fault thread on the uffd (read() then gives the forwarded events). */
  thread: boolean;
  /** The fault thread follows the faulting threads' CPU. */
  follow: boolean;
  /** Microseconds the fault thread polls after a batch of events before it sleeps (0 to 10000; absent: 0). */
  spinUs?: number;
}

/**
 * The native fault path of one swap (native/binding_faults.cc): fault_serve's Server,
 * its regions in the process-wide region table and, with `thread`, the fault thread.
 */
export interface FaultServer {
  /** Publishes an anonymous region to the native path; false if the region table is full. */
  addRegion(r: FaultRegionShare): boolean;
  /** Unpublishes a region, waiting until no native reader uses its buffers. */
  removeRegion(id: number): void;
  /** The events the fault thread forwarded, as Uffd.read (-1: woken by the doorbell). */
  read(out: Float64Array, timeoutMs?: number): number;
  /** Serves one fault natively from this thread (tests): 0 served, 1 forwarded. */
  serve(address: number, flags: number): number;
  counters(): { served: number; forwarded: number; events: number; moves: number };
  /** The CPU the last faulting thread the fault thread looked at ran on (-1: none seen yet). */
  faultCpu(): number;
  /** Stops the fault thread and unpublishes every region. */
  close(): void;
}

export interface NativeBinding {
  /** A blocking Redis connection to host:port (native/resp_conn.h). */
  RemoteConn: new (host: string, port: number) => RemoteConn;
  /**
   * Joins (or creates) the user's shared pool `name` of `bytes`; `member`: take a member slot;
   * `create` false: only an existing one (else an Error with code ENOENT).
   */
  SharedStore: new (name: string, bytes: number, member: boolean, create?: boolean) => SharedStore;
  FaultServer: new (options: FaultServerOptions) => FaultServer;
  /** Binds a native reader to the buffers of a StoreHandle (Store.handle()). */
  StoreReader: new (handle: {
    arena: { control: SharedArrayBuffer; chunks: readonly SharedArrayBuffer[] };
    control: SharedArrayBuffer;
    metas: readonly SharedArrayBuffer[];
  }) => StoreReader;
  Uffd: UffdConstructor;
  Region: RegionConstructor;
  FileIo: new (uffd: Uffd) => FileIo;
  /**
   * An ArrayBuffer in the calling thread over the open region starting at
   * `address` (regions are created in one thread, used from many). Not detached
   * by the region's close(): after close it reads zeros; unmapped when collected.
   */
  attachBuffer(address: number): ArrayBuffer;
  /** UFFDIO_API probe: which features and ioctls the kernel has. */
  probe(): UffdProbe;
  /** madvise(2) over `count` (address, length) pairs, each inside an open region. */
  madvise(ranges: Float64Array, count: number, advice: number): void;
  /**
   * Pages of [address, address + length) mapped now (mincore(2)), inside an open region;
   * length a multiple of 4096, at most 64 pages.
   */
  mapped(address: number, length: number): number;
  /**
   * madvise(MADV_DONTNEED) over the whole pages inside [offset, offset + length)
   * of a (Shared)ArrayBuffer: they go back to the OS and read as zeros.
   * Returns the bytes discarded.
   */
  discardBuffer(buffer: ArrayBufferView | ArrayBuffer | SharedArrayBuffer, offset: number, length: number): number;
  /** sched_setaffinity(0, ...): pin the calling thread. */
  setAffinity(cpus: number[]): void;
  /** sched_getaffinity(0, ...). */
  getAffinity(): number[];
  /** sched_getcpu(). */
  currentCpu(): number;
  /** gettid(2). */
  gettid(): number;
  /** Faults of inline regions the SIGBUS handler forwarded to a dispatcher so far, in this process. */
  inlineForwarded(): number;
  /** Faults of inline regions served in their SIGBUS handler itself (fault_serve: no dispatcher), in this process. */
  inlineServed(): number;
  /** Field 39 of /proc/self/task/TID/stat: the CPU a thread last ran on, -1 if unknown. */
  threadCpu(tid: number): number;
  /** LZ4_decompress_safe from liblz4.so.1 into dst; returns bytes written, throws on bad data. */
  lz4Decompress(
    src: ArrayBufferView | ArrayBuffer | SharedArrayBuffer,
    srcOffset: number,
    srcLength: number,
    dst: ArrayBufferView | ArrayBuffer | SharedArrayBuffer,
    dstOffset: number,
  ): number;
  /** LZ4_compress_default from liblz4.so.1 into dst; returns bytes written, 0 if dst is too small. */
  lz4Compress(
    src: ArrayBufferView | ArrayBuffer | SharedArrayBuffer,
    srcOffset: number,
    srcLength: number,
    dst: ArrayBufferView | ArrayBuffer | SharedArrayBuffer,
    dstOffset: number,
  ): number;
  /** liblz4.so.1 was found. */
  lz4Available: boolean;
  /** libzstd.so.1 was found (copyObject decodes zstd objects natively). */
  zstdAvailable: boolean;
  /** libzstd.so.1 also compresses (ZSTD_compressCCtx): zstdCompress() works. */
  zstdCompressAvailable: boolean;
  /**
   * ZSTD_compressCCtx at `level` (1..22) from libzstd.so.1 with a per-thread
   * context into dst; returns bytes written, 0 if dst is too small.
   */
  zstdCompress(
    src: ArrayBufferView | ArrayBuffer | SharedArrayBuffer,
    srcOffset: number,
    srcLength: number,
    dst: ArrayBufferView | ArrayBuffer | SharedArrayBuffer,
    dstOffset: number,
    level: number,
  ): number;
  /** ZSTD_decompressDCtx of one frame into dst; returns bytes written, throws on bad data. */
  zstdDecompress(
    src: ArrayBufferView | ArrayBuffer | SharedArrayBuffer,
    srcOffset: number,
    srcLength: number,
    dst: ArrayBufferView | ArrayBuffer | SharedArrayBuffer,
    dstOffset: number,
  ): number;
}

/**
 * node-gyp-build picks build/Release (a source build: `npm run build`, or the
 * install script's fallback) over prebuilds/linux-<arch>/ (the prebuilt
 * binaries the package ships, `npm run prebuild`).
 */
function load(): NativeBinding {
  const root = path.join(__dirname, '..', '..');
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports -- inside the try: its failure becomes tmem's error below
    const nodeGypBuild = require('node-gyp-build') as (dir: string) => unknown;
    return nodeGypBuild(root) as NativeBinding;
  } catch (e) {
    const err = new Error(
      `tmem: no native addon for ${process.platform}-${process.arch} (${String((e as Error).message ?? e)}); ` +
        'the package ships prebuilt binaries for linux-x64 and linux-arm64 (glibc); elsewhere it builds from source ' +
        'at install time, which needs python3, make and a C++17 compiler: install them and run `npm rebuild tmem`',
      { cause: e },
    );
    (err as NodeJS.ErrnoException).code = 'ERR_TMEM_NO_ADDON';
    throw err;
  }
}

/** The loaded addon. */
export const native: NativeBinding = load();
