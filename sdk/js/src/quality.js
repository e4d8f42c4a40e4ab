// A remote track's connection quality, as shown on a tile: from what the browser measured
// over the last interval (RTCPeerConnection.getStats: loss, jitter, freezes, packets) and
// what the server says it forwards (subscription_changed / subscription_stats).

/**
 * @typedef {object} QualitySample  one interval of one remote track
 * @property {number} packetsReceived  in the interval
 * @property {number} packetsLost  in the interval (may be negative with duplicates)
 * @property {number} jitterMs  the receiver's current jitter estimate
 * @property {number} freezes  video freezes in the interval
 * @property {boolean} paused  the server paused the video for lack of bandwidth
 * @property {boolean} switching  the server's target layer differs from the one sent
 */

/** Loss fractions and jitter (ms) at which quality drops a step. */
export const QUALITY_THRESHOLDS = { goodLoss: 0.02, poorLoss: 0.1, goodJitterMs: 30, poorJitterMs: 100 };

/**
 * `lost`: nothing arrives (or the server paused it); `poor`: heavy loss or jitter, or
 * the video froze; `good`: some loss or jitter, or the server is moving it to another
 * layer; `excellent`: none of these.
 * @param {QualitySample} s
 * @returns {'excellent' | 'good' | 'poor' | 'lost'}
 */
export function rateQuality(s) {
  if (s.paused || s.packetsReceived <= 0) return 'lost';
  const lost = Math.max(0, s.packetsLost);
  const loss = lost / (s.packetsReceived + lost);
  const t = QUALITY_THRESHOLDS;
  if (loss >= t.poorLoss || s.jitterMs >= t.poorJitterMs || s.freezes > 0) return 'poor';
  if (loss >= t.goodLoss || s.jitterMs >= t.goodJitterMs || s.switching) return 'good';
  return 'excellent';
}
