// The JWTCredential strategy's signing-key rotation, pure: given the keys in the Secret and the
// time, which key signs, which are published, whether a new key is due and which old keys may go.
// Rotation overlaps: a new key is published in the JWKS `publishBeforeSigningMs` before it signs
// (every replica and every cache of the JWKS has it by then), and a key that stopped signing stays
// published for `retainAfterRetiredMs`, until every token it signed has expired.

/** One key as the Secret keeps it. */
export interface StoredKey {
  kid: string;
  createdAtMs: number;
  privateKeyPEM: string;
}

export interface RotationPolicy {
  /** A new key is made when the newest one is this old. */
  rotateAfterMs: number;
  /** A new key is published this long before it signs. */
  publishBeforeSigningMs: number;
  /** A key that stopped signing stays published this long: the longest token lifetime, and some skew. */
  retainAfterRetiredMs: number;
}

/** Clock skew between replicas and kube-apiserver that a retired key's retention allows for. */
export const retentionLeewayMs = 5 * 60_000;

export function rotationPolicy(maxTokenTTLSeconds: number): RotationPolicy {
  return {
    rotateAfterMs: 7 * 24 * 3_600_000,
    publishBeforeSigningMs: 5 * 60_000,
    retainAfterRetiredMs: maxTokenTTLSeconds * 1000 + retentionLeewayMs,
  };
}

export interface KeysDecision {
  /** Make a new key and store it with the kept ones. */
  add: boolean;
  /** Kids whose every token has expired: dropped from the Secret and the JWKS. */
  remove: string[];
  /** The kid that signs now; undefined only when there is no key at all. */
  signing: string | undefined;
  /** Kids published in the JWKS now: every stored key not removed, the pending new one included. */
  published: string[];
  /** When the decision next changes on its own (a key starts signing, is due, or may go). */
  nextChangeAtMs: number;
}

/** Oldest first; equal times by kid, so every replica orders the same Secret the same way. */
export function byAge(keys: readonly StoredKey[]): StoredKey[] {
  return [...keys].sort(
    (a, b) => a.createdAtMs - b.createdAtMs || (a.kid < b.kid ? -1 : a.kid > b.kid ? 1 : 0),
  );
}

export function decideKeys(keys: readonly StoredKey[], nowMs: number, policy: RotationPolicy): KeysDecision {
  const sorted = byAge(keys);
  if (sorted.length === 0) {
    return { add: true, remove: [], signing: undefined, published: [], nextChangeAtMs: nowMs };
  }
  // The oldest key signs from the start: no older key could be signing instead. Every later key
  // waits until it has been published long enough.
  const startsAt = (i: number) =>
    i === 0 ? Number.NEGATIVE_INFINITY : sorted[i]!.createdAtMs + policy.publishBeforeSigningMs;
  let signingIndex = 0;
  sorted.forEach((_, i) => {
    if (startsAt(i) <= nowMs) signingIndex = i;
  });
  const changes: number[] = [];
  const remove: string[] = [];
  // A key older than the signer stopped signing when the key after it started.
  for (let i = 0; i < signingIndex; i++) {
    const goesAt = startsAt(i + 1) + policy.retainAfterRetiredMs;
    if (goesAt <= nowMs) remove.push(sorted[i]!.kid);
    else changes.push(goesAt);
  }
  for (let i = signingIndex + 1; i < sorted.length; i++) changes.push(startsAt(i));
  const newest = sorted.at(-1)!;
  const dueAt = newest.createdAtMs + policy.rotateAfterMs;
  const add = dueAt <= nowMs;
  if (!add) changes.push(dueAt);
  return {
    add,
    remove,
    signing: sorted[signingIndex]!.kid,
    published: sorted.map((k) => k.kid).filter((kid) => !remove.includes(kid)),
    nextChangeAtMs: add ? nowMs : Math.min(...changes),
  };
}

/** The Secret's data key holding the keys, as JSON. */
export const keysDataKey = "keys.json";

interface StoredKeyJSON {
  kid: string;
  createdAt: string;
  privateKeyPEM: string;
}

/** The keys in a Secret's `data` (base64 values); a malformed entry is left out, with the reason. */
export function keysFromSecretData(data: Record<string, string> | undefined): {
  keys: StoredKey[];
  problems: string[];
} {
  const raw = data?.[keysDataKey];
  if (raw === undefined) return { keys: [], problems: [] };
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(raw, "base64").toString("utf8"));
  } catch {
    return { keys: [], problems: [`${keysDataKey} is not JSON`] };
  }
  const list = (parsed as { keys?: unknown })?.keys;
  if (!Array.isArray(list)) return { keys: [], problems: [`${keysDataKey} has no "keys" list`] };
  const keys: StoredKey[] = [];
  const problems: string[] = [];
  list.forEach((entry: Partial<StoredKeyJSON>, i) => {
    const createdAtMs = typeof entry?.createdAt === "string" ? Date.parse(entry.createdAt) : Number.NaN;
    if (
      typeof entry?.kid !== "string" ||
      typeof entry.privateKeyPEM !== "string" ||
      Number.isNaN(createdAtMs)
    ) {
      problems.push(`${keysDataKey} keys[${i}] needs kid, createdAt (RFC 3339) and privateKeyPEM`);
      return;
    }
    keys.push({ kid: entry.kid, createdAtMs, privateKeyPEM: entry.privateKeyPEM });
  });
  return { keys, problems };
}

/** The Secret's `data` holding `keys` (base64 values). */
export function secretDataFor(keys: readonly StoredKey[]): Record<string, string> {
  const json: { keys: StoredKeyJSON[] } = {
    keys: byAge(keys).map((k) => ({
      kid: k.kid,
      createdAt: new Date(k.createdAtMs).toISOString(),
      privateKeyPEM: k.privateKeyPEM,
    })),
  };
  return { [keysDataKey]: Buffer.from(JSON.stringify(json)).toString("base64") };
}
