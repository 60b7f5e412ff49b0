/** How long a browser login may take before the CLI gives up. */
export const defaultLoginTimeoutMs = 5 * 60_000;
