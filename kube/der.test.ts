import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  bitString,
  boolean,
  children,
  decodeObjectIdentifier,
  explicit,
  implicitPrimitive,
  nullValue,
  objectIdentifier,
  octetString,
  printableString,
  readElement,
  sequence,
  setOf,
  smallInteger,
  time,
  tlv,
  unsignedInteger,
  utf8String,
} from "./der.ts";

const hex = (b: Buffer) => b.toString("hex");

describe("DER writer", () => {
  it("writes short and long definite lengths", () => {
    assert.equal(hex(tlv(0x04, Buffer.alloc(0))), "0400");
    assert.equal(hex(tlv(0x04, Buffer.alloc(127))).slice(0, 4), "047f");
    assert.equal(hex(tlv(0x04, Buffer.alloc(128))).slice(0, 6), "048180");
    assert.equal(hex(tlv(0x04, Buffer.alloc(255))).slice(0, 6), "0481ff");
    assert.equal(hex(tlv(0x04, Buffer.alloc(256))).slice(0, 8), "04820100");
    assert.equal(hex(tlv(0x04, Buffer.alloc(70_000))).slice(0, 10), "0483011170");
  });

  it("writes INTEGERs minimally and never negative", () => {
    assert.equal(hex(unsignedInteger(Buffer.of(0, 0, 1))), "020101");
    assert.equal(hex(unsignedInteger(Buffer.of(0x7f))), "02017f");
    assert.equal(hex(unsignedInteger(Buffer.of(0x80))), "02020080");
    assert.equal(hex(unsignedInteger(Buffer.of(0, 0xff, 0))), "020300ff00");
    assert.equal(hex(unsignedInteger(Buffer.of(0, 0))), "020100");
    assert.equal(hex(unsignedInteger(Buffer.alloc(0))), "020100");
    assert.equal(hex(smallInteger(2)), "020102");
  });

  it("writes OBJECT IDENTIFIERs with base-128 arcs", () => {
    assert.equal(hex(objectIdentifier("1.2.840.113549.1.1.11")), "06092a864886f70d01010b");
    assert.equal(hex(objectIdentifier("2.5.29.37")), "0603551d25");
    assert.equal(hex(objectIdentifier("1.3.6.1.5.5.7.3.2")), "06082b06010505070302");
    assert.equal(hex(objectIdentifier("1.2.840.10045.3.1.7")), "06082a8648ce3d030107");
  });

  it("writes the primitive types", () => {
    assert.equal(hex(boolean(true)), "0101ff");
    assert.equal(hex(boolean(false)), "010100");
    assert.equal(hex(nullValue), "0500");
    assert.equal(hex(octetString(Buffer.of(1, 2))), "04020102");
    assert.equal(hex(bitString(Buffer.of(0x84), 2)), "03020284");
    assert.equal(hex(printableString("a,b")), "1303612c62");
    assert.equal(hex(utf8String("ü")), "0c02c3bc");
    assert.equal(hex(explicit(0, smallInteger(2))), "a003020102");
    assert.equal(hex(implicitPrimitive(2, Buffer.from("a"))), "820161");
    assert.equal(hex(sequence()), "3000");
  });

  it("writes UTCTime up to 2049 and GeneralizedTime from 2050, dropping fractions", () => {
    assert.equal(time(Date.UTC(2026, 0, 2, 3, 4, 5, 678)).toString("latin1", 2), "260102030405Z");
    assert.equal(time(Date.UTC(2026, 0, 2, 3, 4, 5))[0], 0x17);
    assert.equal(time(Date.UTC(2049, 11, 31, 23, 59, 59)).toString("latin1", 2), "491231235959Z");
    const generalized = time(Date.UTC(2050, 0, 1, 0, 0, 0));
    assert.equal(generalized[0], 0x18);
    assert.equal(generalized.toString("latin1", 2), "20500101000000Z");
    assert.equal(time(Date.UTC(1949, 11, 31, 23, 59, 59))[0], 0x18);
  });

  it("sorts SET OF elements by their encodings, shorter first on a shared prefix", () => {
    const long = printableString("bb");
    const short = printableString("z");
    const utf8 = utf8String("zz");
    assert.equal(hex(setOf([long, short, utf8])), `310b${hex(utf8)}${hex(short)}${hex(long)}`);
  });
});

describe("DER reader", () => {
  it("reads back what the writer wrote, including long lengths", () => {
    const big = Buffer.alloc(300, 7);
    const outer = sequence(smallInteger(5), octetString(big), objectIdentifier("2.5.29.19"));
    const element = readElement(outer);
    assert.equal(element.tag, 0x30);
    assert.deepEqual(element.raw, outer);
    const [integer, octets, oid] = children(element);
    assert.deepEqual(integer?.content, Buffer.of(5));
    assert.deepEqual(octets?.content, big);
    assert.equal(decodeObjectIdentifier(oid!.content), "2.5.29.19");
    assert.equal(
      decodeObjectIdentifier(objectIdentifier("1.2.840.113549.1.1.11").subarray(2)),
      "1.2.840.113549.1.1.11",
    );
    assert.equal(decodeObjectIdentifier(objectIdentifier("2.999.3").subarray(2)), "2.999.3");
  });

  it("rejects truncated and indefinite-length input", () => {
    assert.throws(() => readElement(Buffer.of(0x30)), /truncated/);
    assert.throws(() => readElement(Buffer.of(0x04, 0x05, 1, 2)), /past the end/);
    assert.throws(() => readElement(Buffer.of(0x30, 0x80, 0, 0)), /unsupported length/);
    assert.throws(() => readElement(Buffer.of(0x04, 0x82, 0x01)), /truncated length/);
    assert.throws(() => readElement(Buffer.of(0x1f, 0x01, 0x00)), /multi-byte tags/);
  });
});
