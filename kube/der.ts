// The small part of DER (ITU-T X.690) that X.509 issuance needs: a writer for the handful of
// types a certificate uses, and a reader just deep enough to take a CA certificate apart (raw
// subject, extensions). Definite lengths only, as DER requires. Hand-written because it issues
// several times faster than @peculiar/x509 (see certs/issue.ts); the golden tests in
// certs/issue.test.ts hold it to what openssl and Node's X509Certificate accept. On the ground
// floor because the CLI writes a certificate request with it too (cli/clientkey.ts).

/** Tag, length and the concatenated contents. */
export function tlv(tag: number, ...contents: Uint8Array[]): Buffer {
  const body = Buffer.concat(contents);
  return Buffer.concat([Buffer.of(tag), encodeLength(body.length), body]);
}

function encodeLength(length: number): Buffer {
  if (length < 0x80) return Buffer.of(length);
  const bytes: number[] = [];
  for (let n = length; n > 0; n = Math.floor(n / 256)) bytes.unshift(n % 256);
  return Buffer.of(0x80 | bytes.length, ...bytes);
}

export const sequence = (...contents: Uint8Array[]): Buffer => tlv(0x30, ...contents);

/** SET OF: DER orders the encoded elements (X.690 11.6); Go's encoding/asn1 sorts them the same way. */
export function setOf(elements: Buffer[]): Buffer {
  return tlv(0x31, ...[...elements].sort(Buffer.compare));
}

/** A non-negative INTEGER from its unsigned big-endian bytes, in the minimal two's-complement form. */
export function unsignedInteger(bytes: Uint8Array): Buffer {
  let start = 0;
  while (start < bytes.length - 1 && bytes[start] === 0) start++;
  const trimmed = bytes.subarray(start);
  const needsPad = trimmed.length === 0 || (trimmed[0]! & 0x80) !== 0;
  return tlv(0x02, needsPad ? Buffer.of(0, ...trimmed) : trimmed);
}

export function smallInteger(value: number): Buffer {
  return unsignedInteger(Buffer.of(value));
}

export function boolean(value: boolean): Buffer {
  return tlv(0x01, Buffer.of(value ? 0xff : 0));
}

export const nullValue: Buffer = Buffer.of(0x05, 0x00);

export function objectIdentifier(dotted: string): Buffer {
  const arcs = dotted.split(".").map(Number);
  const [first = 0, second = 0, ...rest] = arcs;
  const out: number[] = [];
  for (const arc of [first * 40 + second, ...rest]) {
    const base128: number[] = [arc & 0x7f];
    for (let n = Math.floor(arc / 128); n > 0; n = Math.floor(n / 128)) base128.unshift(0x80 | (n & 0x7f));
    out.push(...base128);
  }
  return tlv(0x06, Buffer.from(out));
}

export function octetString(bytes: Uint8Array): Buffer {
  return tlv(0x04, bytes);
}

/** A BIT STRING whose last `unusedBits` bits are padding. */
export function bitString(bytes: Uint8Array, unusedBits = 0): Buffer {
  return tlv(0x03, Buffer.of(unusedBits), bytes);
}

export function utf8String(value: string): Buffer {
  return tlv(0x0c, Buffer.from(value, "utf8"));
}

export function printableString(value: string): Buffer {
  return tlv(0x13, Buffer.from(value, "latin1"));
}

/**
 * RFC 5280 4.1.2.5: UTCTime for years 1950 to 2049, GeneralizedTime otherwise, both to the
 * second in UTC (fractions are dropped, as Go does).
 */
export function time(ms: number): Buffer {
  const iso = new Date(Math.floor(ms / 1000) * 1000).toISOString(); // 2026-11-28T12:02:01.000Z
  const year = Number(iso.slice(0, 4));
  const rest = iso.slice(5, 7) + iso.slice(8, 10) + iso.slice(11, 13) + iso.slice(14, 16) + iso.slice(17, 19);
  if (year >= 1950 && year < 2050) return tlv(0x17, Buffer.from(`${iso.slice(2, 4)}${rest}Z`, "latin1"));
  return tlv(0x18, Buffer.from(`${iso.slice(0, 4)}${rest}Z`, "latin1"));
}

/** [n] EXPLICIT: a constructed context-specific wrapper. */
export function explicit(n: number, content: Uint8Array): Buffer {
  return tlv(0xa0 | n, content);
}

/** [n] IMPLICIT over a primitive type: the contents under a context-specific tag. */
export function implicitPrimitive(n: number, contents: Uint8Array): Buffer {
  return tlv(0x80 | n, contents);
}

/** One decoded element; `raw` is the whole TLV, `content` its value, both views into the input. */
export interface Element {
  tag: number;
  raw: Buffer;
  content: Buffer;
}

/** Decodes the element at `offset`; throws on truncation, indefinite lengths or multi-byte tags. */
export function readElement(input: Buffer, offset = 0): Element {
  const tag = input[offset];
  let lengthByte = input[offset + 1];
  if (tag === undefined || lengthByte === undefined) throw new Error("DER: truncated element");
  if ((tag & 0x1f) === 0x1f) throw new Error("DER: multi-byte tags are not supported");
  let headerLength = 2;
  let length = lengthByte;
  if (lengthByte & 0x80) {
    const count = lengthByte & 0x7f;
    if (count === 0 || count > 4) throw new Error("DER: unsupported length encoding");
    length = 0;
    for (let i = 0; i < count; i++) {
      lengthByte = input[offset + 2 + i];
      if (lengthByte === undefined) throw new Error("DER: truncated length");
      length = length * 256 + lengthByte;
    }
    headerLength += count;
  }
  const end = offset + headerLength + length;
  if (end > input.length) throw new Error("DER: element runs past the end of its input");
  return {
    tag,
    raw: input.subarray(offset, end),
    content: input.subarray(offset + headerLength, end),
  };
}

/** The elements inside a constructed element, in order. */
export function children(element: Element): Element[] {
  const out: Element[] = [];
  for (let offset = 0; offset < element.content.length; ) {
    const child = readElement(element.content, offset);
    out.push(child);
    offset += child.raw.length;
  }
  return out;
}

/** Dotted form of an OBJECT IDENTIFIER's contents. */
export function decodeObjectIdentifier(content: Uint8Array): string {
  const arcs: number[] = [];
  let value = 0;
  for (const byte of content) {
    value = value * 128 + (byte & 0x7f);
    if ((byte & 0x80) === 0) {
      arcs.push(value);
      value = 0;
    }
  }
  const [first = 0, ...rest] = arcs;
  const head = first < 80 ? [Math.floor(first / 40), first % 40] : [2, first - 80];
  return [...head, ...rest].join(".");
}
