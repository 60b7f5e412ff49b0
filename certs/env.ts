// The outside world as issuance sees it, injectable so tests pin the clock and serial numbers.
// (Key generation and ECDSA signing draw on OpenSSL's own randomness, which Node cannot replace.)
import { randomBytes } from "node:crypto";

export interface CertEnv {
  /** Milliseconds since the Unix epoch. */
  now(): number;
  randomBytes(size: number): Buffer;
}

export const defaultCertEnv: CertEnv = { now: () => Date.now(), randomBytes: (size) => randomBytes(size) };

/**
 * NotBefore is this far in the past, as upstream does (after kube-controller-manager's signer),
 * so a client whose clock runs a little behind still accepts a fresh certificate.
 */
export const certBackdateMs = 5 * 60_000;

/** A random 128-bit serial number, as upstream draws it, but never zero: RFC 5280 4.1.2.2 wants it positive. */
export function randomSerial(env: CertEnv): Buffer {
  for (;;) {
    const serial = env.randomBytes(16);
    if (serial.some((byte) => byte !== 0)) return serial;
  }
}
