import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Metrics, removeSeries } from "./metrics.ts";

describe("Metrics", () => {
  it("prefixes names and returns the same metric when asked twice", async () => {
    const m = new Metrics();
    const a = m.counter({ name: "things_total", help: "Things.", labelNames: ["kind"] });
    const b = m.counter({ name: "things_total", help: "Things.", labelNames: ["kind"] });
    assert.equal(a, b);
    a.inc({ kind: "x" });
    b.inc({ kind: "x" }, 2);
    assert.match(await m.text(), /concierge_things_total\{kind="x"\} 3/);
  });

  it("keeps registries apart, so tests do not see each other's counts", async () => {
    const one = new Metrics();
    const two = new Metrics();
    one.gauge({ name: "g", help: "G." }).set(5);
    two.gauge({ name: "g", help: "G." }).set(7);
    assert.match(await one.text(), /concierge_g 5/);
    assert.match(await two.text(), /concierge_g 7/);
  });

  it("supports histograms with custom buckets", async () => {
    const m = new Metrics();
    m.histogram({ name: "h_seconds", help: "H.", buckets: [0.1, 1] }).observe(0.5);
    const text = await m.text();
    assert.match(text, /concierge_h_seconds_bucket\{le="0.1"\} 0/);
    assert.match(text, /concierge_h_seconds_bucket\{le="1"\} 1/);
  });

  it("refuses a second metric of the same name but another kind", () => {
    const m = new Metrics();
    m.counter({ name: "dup", help: "D." });
    assert.throws(() => m.gauge({ name: "dup", help: "D." }), /different kind/);
  });

  it("exposes the Prometheus content type", () => {
    assert.match(new Metrics().contentType, /^text\/plain/);
  });
});

describe("removeSeries", () => {
  it("removes every series whose labels include the match, histogram buckets included, and nothing else", async () => {
    const metrics = new Metrics();
    const counter = metrics.counter({ name: "rs_total", help: "h", labelNames: ["authenticator", "reason"] });
    const histogram = metrics.histogram({ name: "rs_seconds", help: "h", labelNames: ["authenticator"] });
    counter.inc({ authenticator: "gone", reason: "a" });
    counter.inc({ authenticator: "gone", reason: "b" });
    counter.inc({ authenticator: "kept", reason: "a" });
    histogram.observe({ authenticator: "gone" }, 0.1);
    histogram.observe({ authenticator: "kept" }, 0.1);
    await removeSeries(counter, { authenticator: "gone" });
    await removeSeries(histogram, { authenticator: "gone" });
    const text = await metrics.text();
    assert.doesNotMatch(text, /authenticator="gone"/);
    assert.match(text, /concierge_rs_total\{authenticator="kept",reason="a"\} 1/);
    assert.match(text, /concierge_rs_seconds_count\{authenticator="kept"\} 1/);
  });
});
