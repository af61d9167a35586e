/**
 * Delay before retry number `attempts` (1-based): exponential from 2 s, capped, with "equal jitter" (between half and all of it) so a
 * thousand files failing in the same S3 outage do not retry in lockstep. Pure: randomness is passed in.
 */
export function retryDelayMs(attempts: number, maxBackoffSeconds: number, random: () => number): number {
  const baseMs = 2000;
  const capMs = maxBackoffSeconds * 1000;
  const ceiling = Math.min(capMs, baseMs * 2 ** Math.min(Math.max(attempts - 1, 0), 30));
  return Math.round(ceiling / 2 + (random() * ceiling) / 2);
}
