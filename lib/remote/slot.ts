/**
 * Redis Cluster's key slot: CRC16 (XMODEM) of the key's hash tag, mod 16384.
 * Written here (a dozen lines) rather than loading cluster-key-slot in the dispatcher
 * Worker; test/remote-client.test.ts checks it against the server's CLUSTER KEYSLOT.
 */
const TABLE = new Uint16Array(256);
for (let i = 0; i < 256; i++) {
  let c = i << 8;
  for (let k = 0; k < 8; k++) c = c & 0x8000 ? (c << 1) ^ 0x1021 : c << 1;
  TABLE[i] = c & 0xffff;
}

/** The slot of a hash tag's content (ASCII). */
export function slotOfTag(tag: string): number {
  let crc = 0;
  for (let i = 0; i < tag.length; i++) crc = ((crc << 8) ^ TABLE[((crc >> 8) ^ tag.charCodeAt(i)) & 0xff]) & 0xffff;
  return crc & 16383;
}

/** The slot of a key: of its hash tag {...} when it has a non-empty one, else of the whole key. */
export function slotOfKey(key: string): number {
  const s = key.indexOf('{');
  if (s >= 0) {
    const e = key.indexOf('}', s + 1);
    if (e > s + 1) return slotOfTag(key.slice(s + 1, e));
  }
  return slotOfTag(key);
}
