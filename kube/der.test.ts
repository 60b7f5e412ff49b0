import assert from "node:assert/strict";
import { describe, it } from "node:test";
import * as der from "./der.ts";

const hex = (b: Buffer) => b.toString("hex");

describe("DER writer", () => {
  it("writes short and long definite lengths", () => {
    assert.equal(hex(der.tlv(0x04, Buffer.alloc(0))), "0400");
    assert.equal(hex(der.tlv(0x04, Buffer.alloc(127))).slice(0, 4), "047f");
    assert.equal(hex(der.tlv(0x04, Buffer.alloc(128))).slice(0, 6), "048180");
    assert.equal(hex(der.tlv(0x04, Buffer.alloc(255))).slice(0, 6), "0481ff");
    assert.equal(hex(der.tlv(0x04, Buffer.alloc(256))).slice(0, 8), "04820100");
    assert.equal(hex(der.tlv(0x04, Buffer.alloc(70_000))).slice(0, 10), "0483011170");
  });

  it("writes INTEGERs minimally and never negative", () => {
    assert.equal(hex(der.unsignedInteger(Buffer.of(0, 0, 1))), "020101");
    assert.equal(hex(der.unsignedInteger(Buffer.of(0x7f))), "02017f");
    assert.equal(hex(der.unsignedInteger(Buffer.of(0x80))), "02020080");
    assert.equal(hex(der.unsignedInteger(Buffer.of(0, 0xff, 0))), "020300ff00");
    assert.equal(hex(der.unsignedInteger(Buffer.of(0, 0))), "020100");
    assert.equal(hex(der.unsignedInteger(Buffer.alloc(0))), "020100");
    assert.equal(hex(der.smallInteger(2)), "020102");
  });

  it("writes OBJECT IDENTIFIERs with base-128 arcs", () => {
    assert.equal(hex(der.objectIdentifier("1.2.840.113549.1.1.11")), "06092a864886f70d01010b");
    assert.equal(hex(der.objectIdentifier("2.5.29.37")), "0603551d25");
    assert.equal(hex(der.objectIdentifier("1.3.6.1.5.5.7.3.2")), "06082b06010505070302");
    assert.equal(hex(der.objectIdentifier("1.2.840.10045.3.1.7")), "06082a8648ce3d030107");
  });

  it("writes the primitive types", () => {
    assert.equal(hex(der.boolean(true)), "0101ff");
    assert.equal(hex(der.boolean(false)), "010100");
    assert.equal(hex(der.nullValue), "0500");
    assert.equal(hex(der.octetString(Buffer.of(1, 2))), "04020102");
    assert.equal(hex(der.bitString(Buffer.of(0x84), 2)), "03020284");
    assert.equal(hex(der.printableString("a,b")), "1303612c62");
    assert.equal(hex(der.utf8String("ü")), "0c02c3bc");
    assert.equal(hex(der.explicit(0, der.smallInteger(2))), "a003020102");
    assert.equal(hex(der.implicitPrimitive(2, Buffer.from("a"))), "820161");
    assert.equal(hex(der.sequence()), "3000");
  });

  it("writes UTCTime up to 2049 and GeneralizedTime from 2050, dropping fractions", () => {
    assert.equal(der.time(Date.UTC(2026, 0, 2, 3, 4, 5, 678)).toString("latin1", 2), "260102030405Z");
    assert.equal(der.time(Date.UTC(2026, 0, 2, 3, 4, 5))[0], 0x17);
    assert.equal(der.time(Date.UTC(2049, 11, 31, 23, 59, 59)).toString("latin1", 2), "491231235959Z");
    const generalized = der.time(Date.UTC(2050, 0, 1, 0, 0, 0));
    assert.equal(generalized[0], 0x18);
    assert.equal(generalized.toString("latin1", 2), "20500101000000Z");
    assert.equal(der.time(Date.UTC(1949, 11, 31, 23, 59, 59))[0], 0x18);
  });

  it("sorts SET OF elements by their encodings, shorter first on a shared prefix", () => {
    const long = der.printableString("bb");
    const short = der.printableString("z");
    const utf8 = der.utf8String("zz");
    assert.equal(hex(der.setOf([long, short, utf8])), `310b${hex(utf8)}${hex(short)}${hex(long)}`);
  });
});

describe("DER reader", () => {
  it("reads back what the writer wrote, including long lengths", () => {
    const big = Buffer.alloc(300, 7);
    const outer = der.sequence(der.smallInteger(5), der.octetString(big), der.objectIdentifier("2.5.29.19"));
    const element = der.readElement(outer);
    assert.equal(element.tag, 0x30);
    assert.deepEqual(element.raw, outer);
    const [integer, octets, oid] = der.children(element);
    assert.deepEqual(integer?.content, Buffer.of(5));
    assert.deepEqual(octets?.content, big);
    assert.equal(der.decodeObjectIdentifier(oid!.content), "2.5.29.19");
    assert.equal(
      der.decodeObjectIdentifier(der.objectIdentifier("1.2.840.113549.1.1.11").subarray(2)),
      "1.2.840.113549.1.1.11",
    );
    assert.equal(der.decodeObjectIdentifier(der.objectIdentifier("2.999.3").subarray(2)), "2.999.3");
  });

  it("rejects truncated and indefinite-length input", () => {
    assert.throws(() => der.readElement(Buffer.of(0x30)), /truncated/);
    assert.throws(() => der.readElement(Buffer.of(0x04, 0x05, 1, 2)), /past the end/);
    assert.throws(() => der.readElement(Buffer.of(0x30, 0x80, 0, 0)), /unsupported length/);
    assert.throws(() => der.readElement(Buffer.of(0x04, 0x82, 0x01)), /truncated length/);
    assert.throws(() => der.readElement(Buffer.of(0x1f, 0x01, 0x00)), /multi-byte tags/);
  });
});
