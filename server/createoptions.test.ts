import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { createOptions } from "./createoptions.ts";

const parse = (query: string) => createOptions(new URLSearchParams(query));

describe("createOptions", () => {
  it("defaults fieldValidation to Warn and takes the first of several values", () => {
    assert.deepEqual(parse(""), { dryRun: [], fieldValidation: "Warn" });
    assert.deepEqual(parse("fieldValidation="), { dryRun: [], fieldValidation: "Warn" });
    assert.deepEqual(parse("fieldValidation=Strict&fieldValidation=Bogus&dryRun=All"), {
      dryRun: ["All"],
      fieldValidation: "Strict",
    });
    assert.deepEqual(parse("fieldValidation=Ignore"), { dryRun: [], fieldValidation: "Ignore" });
  });

  it("refuses other values as ValidateCreateOptions does, every problem in one 422", () => {
    const res = parse("dryRun=Maybe&fieldValidation=strict");
    assert.ok("code" in res);
    assert.equal(res.code, 422);
    const body = res.body as { message: string; reason: string; details: unknown };
    assert.equal(body.reason, "Invalid");
    assert.equal(
      body.message,
      'CreateOptions.meta.k8s.io "" is invalid: [dryRun: Unsupported value: []string{"Maybe"}: supported values: "All", fieldValidation: Unsupported value: "strict": supported values: "", "Ignore", "Strict", "Warn"]',
    );
    assert.deepEqual(body.details, {
      group: "meta.k8s.io",
      kind: "CreateOptions",
      causes: [
        {
          reason: "FieldValueNotSupported",
          message: 'Unsupported value: []string{"Maybe"}: supported values: "All"',
          field: "dryRun",
        },
        {
          reason: "FieldValueNotSupported",
          message: 'Unsupported value: "strict": supported values: "", "Ignore", "Strict", "Warn"',
          field: "fieldValidation",
        },
      ],
    });
  });
});
