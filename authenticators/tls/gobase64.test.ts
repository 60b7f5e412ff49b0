import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { decodeStdBase64 } from "./gobase64.ts";

// Produced by Go 1.26's base64.StdEncoding.DecodeString: "ok:<hex>" or Go's error text.
const golden: [string, string][] = [
  ["", "ok:"],
  ["QQ==", "ok:41"],
  ["QUI=", "ok:4142"],
  ["QUJD", "ok:414243"],
  ["QUJDRA==", "ok:41424344"],
  ["Q", "illegal base64 data at input byte 0"],
  ["QQ", "illegal base64 data at input byte 0"],
  ["QQ=", "illegal base64 data at input byte 3"],
  ["QQ=x", "illegal base64 data at input byte 2"],
  ["QQ==x", "illegal base64 data at input byte 4"],
  ["QQ==\n", "ok:41"],
  ["QU\nJD", "ok:414243"],
  ["Q===", "illegal base64 data at input byte 1"],
  ["=QQQ", "illegal base64 data at input byte 0"],
  ["this is not base64!", "illegal base64 data at input byte 4"],
  ["QUJD!", "illegal base64 data at input byte 4"],
  ["QUJDRA", "illegal base64 data at input byte 4"],
  ["QUJDRA=", "illegal base64 data at input byte 7"],
  ["QUJD\r\nRA==", "ok:41424344"],
  ["QQ\n=\n=", "ok:41"],
  ["QQ=\n", "illegal base64 data at input byte 4"],
  ["abc$def", "illegal base64 data at input byte 3"],
  ["YWJj ZGVm", "illegal base64 data at input byte 4"],
  ["YWJjZA==YWJj", "illegal base64 data at input byte 8"],
  ["____", "illegal base64 data at input byte 0"],
  ["QUJDRA==\n\nx", "illegal base64 data at input byte 10"],
];

describe("decodeStdBase64 matches Go", () => {
  for (const [input, want] of golden) {
    it(JSON.stringify(input), () => {
      let got: string;
      try {
        got = `ok:${decodeStdBase64(input).toString("hex")}`;
      } catch (err) {
        got = (err as Error).message;
      }
      assert.equal(got, want);
    });
  }
});
