import assert from "node:assert/strict";
import type { LookupAddress } from "node:dns";
import { after, describe, it } from "node:test";
import { guardedLookup, refusedAddress, refusedHost, setAllowLinkLocalAddresses } from "./outbound.ts";

const lookup = (host: string, all = false) =>
  new Promise<string | LookupAddress[]>((resolve, reject) =>
    guardedLookup(host, { all }, (err, address) => (err ? reject(err) : resolve(address))),
  );

describe("outbound address policy", () => {
  after(() => setAllowLinkLocalAddresses(false));

  const refused = [
    "169.254.169.254",
    "169.254.0.1",
    "::ffff:169.254.169.254",
    "::ffff:a9fe:a9fe",
    "fe80::1",
    "febf::1",
    "fd00:ec2::254",
    "100.100.100.200",
  ];
  for (const ip of refused) {
    it(`refuses ${ip}`, () =>
      assert.match(refusedAddress(ip) ?? "", /is a link-local or cloud metadata address/));
  }

  const allowed = [
    "127.0.0.1",
    "10.0.0.1",
    "169.253.255.255",
    "169.255.0.0",
    "::1",
    "fec0::1",
    "fd00:ec2::253",
  ];
  for (const ip of allowed) {
    it(`allows ${ip}`, () => assert.equal(refusedAddress(ip), undefined));
  }

  it("reads hosts as a URL's dialer would: brackets, numeric and octal forms", () => {
    for (const host of ["[::ffff:169.254.169.254]", "2852039166", "0251.0376.0251.0376", "0xa9fea9fe"]) {
      assert.match(refusedHost(host) ?? "", /link-local/, host);
    }
    for (const host of ["example.com", "[::1]", "localhost", "web hook"])
      assert.equal(refusedHost(host), undefined);
  });

  it("fails a lookup that resolves to a refused address, and passes others through", async () => {
    await assert.rejects(lookup("2852039166"), (err: NodeJS.ErrnoException) => {
      assert.equal(err.code, "EREFUSEDADDRESS");
      assert.match(err.message, /^2852039166 resolves to 169.254.169.254 is a link-local/);
      return true;
    });
    assert.equal(await lookup("127.0.0.1"), "127.0.0.1");
    assert.deepEqual(await lookup("127.0.0.1", true), [{ address: "127.0.0.1", family: 4 }]);
  });

  it("allows everything once the operator opts in", async () => {
    setAllowLinkLocalAddresses(true);
    assert.equal(refusedAddress("169.254.169.254"), undefined);
    assert.equal(refusedHost("[fe80::1]"), undefined);
    assert.equal(await lookup("2852039166"), "169.254.169.254");
    setAllowLinkLocalAddresses(false);
  });
});
