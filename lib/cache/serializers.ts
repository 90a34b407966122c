/**
 * How the cache turns values into bytes and back: v8.serialize (the default: the structured
 * clone algorithm, so Maps, Sets, Dates, typed arrays, cycles), JSON, raw bytes, msgpackr (an
 * optional peer dependency, loaded on first use) or the program's own { serialize, deserialize }.
 *
 * decode() is handed a view into region memory that is reused once the entry goes: every
 * decoder here returns values that own their bytes (Node's v8.deserialize returns typed arrays
 * as views into its input, so it is given a copy).
 */
import * as v8 from 'node:v8';
import { invalidArgType, invalidArgValue } from '../errors';

/** A serializer of the program's own: bytes out of a value, a value out of bytes. */
export interface CacheSerializer {
  /** The value's bytes; called once per set(). */
  serialize(value: unknown): Uint8Array;
  /**
   * The value back. `bytes` is a view into the cache's region that is reused after the call:
   * copy what the value keeps (Buffer.from(bytes)).
   */
  deserialize(bytes: Uint8Array): unknown;
}

/** A serializer as the cache uses it. */
export interface Codec {
  readonly name: string;
  encode(value: unknown): Uint8Array;
  decode(bytes: Uint8Array): unknown;
}

/** Built-in serializer names. */
export const SERIALIZERS = ['v8', 'json', 'raw', 'msgpackr'] as const;
export type SerializerName = (typeof SERIALIZERS)[number];

const utf8 = new TextDecoder('utf-8', { fatal: false });

function notSerializable(name: string, e: unknown): Error {
  const err = invalidArgValue(
    `value cannot be serialized with ${name}: ${e instanceof Error ? e.message : String(e)}`,
  ) as Error;
  (err as { cause?: unknown }).cause = e;
  return err;
}

const v8Codec: Codec = {
  name: 'v8',
  encode(value) {
    try {
      return v8.serialize(value);
    } catch (e) {
      throw notSerializable('v8.serialize', e);
    }
  },
  decode: (bytes) => v8.deserialize(Buffer.from(bytes)) as unknown,
};

const jsonCodec: Codec = {
  name: 'json',
  encode(value) {
    let s: string | undefined;
    try {
      s = JSON.stringify(value);
    } catch (e) {
      throw notSerializable('JSON', e);
    }
    if (s === undefined)
      throw notSerializable('JSON', new Error(`JSON.stringify returned undefined for ${typeof value}`));
    return Buffer.from(s, 'utf8');
  },
  decode: (bytes) => JSON.parse(utf8.decode(bytes)) as unknown,
};

const rawCodec: Codec = {
  name: 'raw',
  encode(value) {
    if (!(value instanceof Uint8Array)) {
      throw invalidArgType(
        `value must be a Uint8Array or Buffer with serializer 'raw', got ${value === null ? 'null' : typeof value}`,
      );
    }
    return value;
  },
  decode: (bytes) => Buffer.from(bytes),
};

type Msgpackr = typeof import('msgpackr');
let msgpackr: Codec | undefined;

/** Loads msgpackr (an optional peer dependency) on first use. */
function msgpackrCodec(): Codec {
  if (msgpackr) return msgpackr;
  let m: Msgpackr;
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports -- an optional peer dependency, loaded on first use
    m = require('msgpackr') as Msgpackr;
  } catch (e) {
    const err = new Error(
      "tmem: serializer 'msgpackr' needs the msgpackr package (an optional peer dependency): npm install msgpackr",
      { cause: e },
    );
    throw Object.assign(err, { code: 'ERR_TMEM_NO_MSGPACKR' });
  }
  // Plain MessagePack maps (no record extension, whose structures would be shared state), and
  // binary data copied out of the region.
  const packr = new m.Packr({ useRecords: false, copyBuffers: true });
  msgpackr = {
    name: 'msgpackr',
    encode(value) {
      try {
        return packr.pack(value);
      } catch (e) {
        throw notSerializable('msgpackr', e);
      }
    },
    decode: (bytes) => packr.unpack(bytes) as unknown,
  };
  return msgpackr;
}

/**
 * The codec for a `serializer` option (already checked to be a name or an object).
 * @throws Error ERR_TMEM_NO_MSGPACKR when 'msgpackr' is asked for and not installed
 */
export function codecFor(serializer: SerializerName | CacheSerializer): Codec {
  if (typeof serializer === 'object') {
    const own = serializer;
    return {
      name: 'custom',
      encode(value) {
        const bytes = own.serialize(value);
        if (!(bytes instanceof Uint8Array))
          throw invalidArgType('serializer.serialize must return a Uint8Array (or Buffer)');
        return bytes;
      },
      decode: (bytes) => own.deserialize(bytes),
    };
  }
  switch (serializer) {
    case 'json':
      return jsonCodec;
    case 'raw':
      return rawCodec;
    case 'msgpackr':
      return msgpackrCodec();
    default:
      return v8Codec;
  }
}
