// Warning headers as the generic apiserver's warning recorder writes them
// (k8s.io/apiserver/pkg/endpoints/filters/warning.go): `299 - "<text>"`, each text once, at most
// 4096 runes in all; past that every text is cut to 256 runes, and once those fill 4096 more the
// rest are dropped.

const totalRunes = 4 * 1024;
const itemRunes = 256;

// k8s.io/apimachinery/pkg/util/net NewWarningHeader: the text quoted, `"` and `\` escaped. A
// header value goes out as latin1, so the UTF-8 bytes are handed over one per character, as Go
// writes them.
function header(text: string): string {
  return Buffer.from(`299 - "${text.replace(/["\\]/g, "\\$&")}"`, "utf8").toString("latin1");
}

/** The `Warning` header values for these texts, in order. */
export function warningHeaders(texts: readonly string[]): string[] {
  const recorded: string[][] = [];
  let headers: string[] = [];
  let written = 0;
  let truncating = false;
  const seen = new Set<string>();
  const add = (runes: string[]) => {
    const text = truncating ? runes.slice(0, itemRunes) : runes;
    written += text.length;
    headers.push(header(text.join("")));
  };
  for (const text of texts) {
    if (text === "" || seen.has(text) || (truncating && written >= totalRunes)) continue;
    seen.add(text);
    const runes = [...text];
    recorded.push(runes);
    if (truncating || written + runes.length <= totalRunes) {
      add(runes);
      continue;
    }
    // Over the limit for the first time: every text so far again, cut short.
    truncating = true;
    written = 0;
    headers = [];
    for (const r of recorded) add(r);
  }
  return headers;
}
