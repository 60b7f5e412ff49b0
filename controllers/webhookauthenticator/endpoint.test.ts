import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { goQuote } from "../../kube/goquote.ts";
import { type EndpointValidation, validateEndpoint } from "./endpoint.ts";

const ok = (host: string, port: number): EndpointValidation => ({ ok: true, hostPort: { host, port } });
const invalid = (message: string): EndpointValidation => ({
  ok: false,
  reason: "InvalidEndpointURL",
  message,
});
const parse = (url: string, err: string) =>
  invalid(`spec.endpoint URL cannot be parsed: parse ${goQuote(url)}: ${err}`);
const notValid = (err: string) => invalid(`spec.endpoint URL is not valid: ${err}`);

const metadata = (ip: string): EndpointValidation => ({
  ok: false,
  reason: "InvalidEndpointURL",
  message: `spec.endpoint URL host ${ip} is a link-local or cloud metadata address, which is not dialled unless outbound.allowLinkLocalAddresses in the Concierge config allows it`,
});

describe("validateEndpoint", () => {
  const cases: [string, EndpointValidation][] = [
    ["https://example.com/webhook", ok("example.com", 443)],
    ["https://127.0.0.1:8443/a/b?c=d#e", ok("127.0.0.1", 8443)],
    ["https://[::1]/x", ok("::1", 443)],
    ["https://[::1]:9443/x", ok("::1", 9443)],
    ["HTTPS://Example.COM", ok("Example.COM", 443)],
    ["https://user:pass@example.com/x", ok("example.com", 443)],
    ["https://010.0.0.1/", ok("010.0.0.1", 443)],
    // From upstream's unit tests.
    ["https://[0:0:0:0:0:0:0:1]:69999/some/fake/path", notValid('invalid port "69999"')],
    [
      "https://.café   .com/café/café/café/coffee",
      parse("https://.café   .com/café/café/café/coffee", 'invalid character " " in host name'),
    ],
    [
      "http://localhost",
      {
        ok: false,
        reason: "InvalidEndpointURLScheme",
        message: "spec.endpoint URL http://localhost has invalid scheme, require 'https'",
      },
    ],
    ["https://host:abc/", parse("https://host:abc/", 'invalid port ":abc" after host')],
    ["https://host:/", notValid('invalid port ""')],
    ["https://host:0/", notValid('invalid port "0"')],
    ["https://ho_st.example.com", notValid('host "ho_st.example.com" is not a valid hostname or IP address')],
    ["https://café.example.com", notValid('host "café.example.com" is not a valid hostname or IP address')],
    ["https:opaque", notValid('host "" is not a valid hostname or IP address')],
    ["https://%zz/", parse("https://%zz/", 'invalid URL escape "%zz"')],
    ["https://a%41b/", parse("https://a%41b/", 'invalid URL escape "%41"')],
    ["https://example.com/a%zz", parse("https://example.com/a%zz", 'invalid URL escape "%zz"')],
    ["https://example.com/#%zz", parse("https://example.com/#%zz", 'invalid URL escape "%zz"')],
    ["https://exa\tmple.com", parse("https://exa\tmple.com", "net/url: invalid control character in URL")],
    ["https://[::1/", parse("https://[::1/", "missing ']' in host")],
    ["https://[::1]x/", parse("https://[::1]x/", 'invalid port "x" after host')],
    ["https://us er@example.com/", parse("https://us er@example.com/", "net/url: invalid userinfo")],
    ["://x", parse("://x", "missing protocol scheme")],
    ["https://169.254.169.254/", metadata("169.254.169.254")],
    ["https://[::ffff:169.254.169.254]/", metadata("::ffff:169.254.169.254")],
    ["https://0251.0376.0251.0376/", metadata("169.254.169.254")],
    ["https://[fd00:ec2::254]/", metadata("fd00:ec2::254")],
  ];
  for (const [endpoint, want] of cases) {
    it(JSON.stringify(endpoint), () => assert.deepEqual(validateEndpoint(endpoint), want));
  }

  it("quotes like Go's strconv.Quote", () => {
    assert.equal(goQuote('a"b\\c\n\x01é'), '"a\\"b\\\\c\\n\\x01é"');
  });
});
