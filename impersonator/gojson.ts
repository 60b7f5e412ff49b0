/**
 * JSON as Go's encoding/json writes it for the same values: JSON.stringify plus the HTML-safe
 * escapes Go's encoder applies by default (`<`, `>`, `&`, U+2028, U+2029). Map keys must already be
 * in Go's (sorted) order and empty fields already dropped; this only settles the bytes.
 */
export function goJSON(value: unknown): string {
  return JSON.stringify(value)
    .replaceAll("<", "\\u003c")
    .replaceAll(">", "\\u003e")
    .replaceAll("&", "\\u0026")
    .replaceAll("\u2028", "\\u2028")
    .replaceAll("\u2029", "\\u2029");
}
