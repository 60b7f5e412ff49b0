// Go's base64.StdEncoding.DecodeString, including where it reports corrupt input:
// upstream's condition messages quote Go's "illegal base64 data at input byte N", and
// users compare those messages across implementations.

const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const decodeMap = new Int16Array(256).fill(-1);
for (let i = 0; i < alphabet.length; i++) decodeMap[alphabet.charCodeAt(i)] = i;

const newline = (c: number | undefined) => c === 0x0a || c === 0x0d;
const pad = 0x3d;

export class CorruptInputError extends Error {
  readonly offset: number;
  constructor(offset: number) {
    super(`illegal base64 data at input byte ${offset}`);
    this.offset = offset;
  }
}

/** Decodes like Go: newlines are skipped, padding is required, trailing bits are ignored. */
export function decodeStdBase64(input: string): Buffer {
  const src = Buffer.from(input, "latin1");
  const out: number[] = [];
  let si = 0;
  for (;;) {
    const quantum: number[] = [];
    let ended = false;
    while (quantum.length < 4) {
      if (si === src.length) {
        if (quantum.length === 0) return Buffer.from(out);
        throw new CorruptInputError(si - quantum.length);
      }
      const c = src[si]!;
      si++;
      const value = decodeMap[c]!;
      if (value >= 0) {
        quantum.push(value);
        continue;
      }
      if (newline(c)) continue;
      if (c !== pad) throw new CorruptInputError(si - 1);
      // Padding: only after two or three symbols, and it ends the input.
      if (quantum.length < 2) throw new CorruptInputError(si - 1);
      if (quantum.length === 2) {
        while (si < src.length && newline(src[si])) si++;
        if (si === src.length) throw new CorruptInputError(src.length);
        if (src[si] !== pad) throw new CorruptInputError(si - 1);
        si++;
      }
      while (si < src.length && newline(src[si])) si++;
      if (si < src.length) throw new CorruptInputError(si);
      ended = true;
      break;
    }
    const [a = 0, b = 0, c = 0, d = 0] = quantum;
    const bits = (a << 18) | (b << 12) | (c << 6) | d;
    const bytes = quantum.length - 1;
    if (bytes >= 1) out.push((bits >> 16) & 0xff);
    if (bytes >= 2) out.push((bits >> 8) & 0xff);
    if (bytes >= 3) out.push(bits & 0xff);
    if (ended) return Buffer.from(out);
  }
}
