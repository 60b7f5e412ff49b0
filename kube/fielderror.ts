// Field errors worded like k8s.io/apimachinery's field.Error, so a refusal from the admission
// webhook reads like one from kube-apiserver itself: `spec.issuer: Invalid value: "http://x": <detail>`.

export interface FieldError {
  /** The field path, e.g. `spec.tls.certificateAuthorityData` or `spec.claims.extra[1].key`. */
  readonly field: string;
  /** Everything after `<field>: `, e.g. `Invalid value: "x": must be lowercase`. */
  readonly message: string;
}

export function invalid(field: string, value: string, detail: string): FieldError {
  return { field, message: `Invalid value: ${goQuote(value)}: ${detail}` };
}

export function required(field: string, detail = ""): FieldError {
  return { field, message: detail ? `Required value: ${detail}` : "Required value" };
}

export function forbidden(field: string, detail: string): FieldError {
  return { field, message: `Forbidden: ${detail}` };
}

export function duplicate(field: string, value: string): FieldError {
  return { field, message: `Duplicate value: ${goQuote(value)}` };
}

export function formatFieldError(e: FieldError): string {
  return `${e.field}: ${e.message}`;
}

/**
 * What `ErrorList.ToAggregate().Error()` prints: one error alone, several as `[a, b]`, each
 * distinct message once.
 */
export function aggregateMessage(errors: readonly FieldError[]): string {
  const distinct = [...new Set(errors.map(formatFieldError))];
  return distinct.length === 1 ? (distinct[0] ?? "") : `[${distinct.join(", ")}]`;
}

// Go's unicode.IsPrint: letters, marks, numbers, punctuation, symbols and the ASCII space.
const printable = /^[\p{L}\p{M}\p{N}\p{P}\p{S} ]$/u;
const shortEscapes: Record<string, string> = {
  "\x07": "\\a",
  "\b": "\\b",
  "\f": "\\f",
  "\n": "\\n",
  "\r": "\\r",
  "\t": "\\t",
  "\v": "\\v",
};

/** Go's strconv.Quote (what `%q` prints), so quoted values match kube-apiserver's byte for byte. */
export function goQuote(s: string): string {
  let out = '"';
  for (const ch of s) {
    const code = ch.codePointAt(0) ?? 0;
    if (ch === '"' || ch === "\\") out += `\\${ch}`;
    else if (printable.test(ch)) out += ch;
    else if (shortEscapes[ch]) out += shortEscapes[ch];
    else if (code < 0x20 || code === 0x7f) out += `\\x${code.toString(16).padStart(2, "0")}`;
    // A lone surrogate cannot come from valid UTF-8; Go would have decoded U+FFFD there.
    else if (code >= 0xd800 && code <= 0xdfff) out += "\uFFFD";
    else if (code < 0x10000) out += `\\u${code.toString(16).padStart(4, "0")}`;
    else out += `\\U${code.toString(16).padStart(8, "0")}`;
  }
  return `${out}"`;
}
