// SDP <-> mediasoup parameters: the bridge every mediasoup deployment writes (mediasoup
// has no signaling of its own). Pure functions over sdp-transform's parsed form, so that
// they are unit-tested on recorded SDPs (test/sdp.test.mjs).
import * as sdpTransform from 'sdp-transform';

/** An error that the HTTP layer answers with 400 and this message. */
export class SdpError extends Error {}

/** Parse an SDP string; refuse what is not one. */
export function parse(sdp) {
  if (typeof sdp !== 'string' || !sdp.startsWith('v=0')) {
    throw new SdpError('not an SDP (it must start with v=0)');
  }
  const s = sdpTransform.parse(sdp);
  if (!Array.isArray(s.media) || s.media.length === 0) {
    throw new SdpError('SDP without media sections');
  }
  return s;
}

const fingerprintOf = (s, m) => m.fingerprint ?? s.fingerprint;

/**
 * The remote DTLS parameters for `transport.connect()`. The remote is the DTLS client
 * unless it says `a=setup:passive` (then mediasoup, the answerer or offerer, is client).
 */
export function dtlsParameters(s) {
  const m = s.media[0];
  const fp = fingerprintOf(s, m);
  if (!fp) throw new SdpError('SDP without a=fingerprint');
  const setup = m.setup ?? s.setup ?? 'actpass';
  return {
    role: setup === 'passive' ? 'server' : 'client',
    fingerprints: [{ algorithm: fp.type.toLowerCase(), value: fp.hash.toUpperCase() }],
  };
}

const mimeOf = (kind, codec) => `${kind}/${codec}`;

/** The codecs of one offered m-line that the router supports, with their RTX. */
function offeredCodecs(m, routerCaps) {
  const rtp = m.rtp ?? [];
  const fmtpOf = (pt) => (m.fmtp ?? []).find((f) => f.payload === pt)?.config ?? '';
  const params = (pt) => sdpTransform.parseParams(fmtpOf(pt));
  const fbOf = (pt) =>
    (m.rtcpFb ?? [])
      .filter((f) => String(f.payload) === String(pt) || f.payload === '*')
      .map((f) => ({ type: f.type, parameter: f.subtype ?? '' }));
  const supported = (r) =>
    routerCaps.codecs.some(
      (c) => c.mimeType.toLowerCase() === mimeOf(m.type, r.codec).toLowerCase(),
    );
  const main = rtp.find((r) => r.codec.toLowerCase() !== 'rtx' && supported(r));
  if (!main) return [];
  const codecs = [
    {
      mimeType: mimeOf(m.type, main.codec),
      payloadType: main.payload,
      clockRate: main.rate,
      ...(main.encoding ? { channels: Number(main.encoding) } : {}),
      parameters: params(main.payload),
      rtcpFeedback: fbOf(main.payload),
    },
  ];
  const rtx = rtp.find(
    (r) => r.codec.toLowerCase() === 'rtx' && Number(params(r.payload).apt) === main.payload,
  );
  if (rtx) {
    codecs.push({
      mimeType: mimeOf(m.type, 'rtx'),
      payloadType: rtx.payload,
      clockRate: rtx.rate,
      parameters: { apt: main.payload },
      rtcpFeedback: [],
    });
  }
  return codecs;
}

/** Header extensions mediasoup understands, as the offer numbered them. */
function offeredExtensions(m, routerCaps) {
  return (m.ext ?? [])
    .filter((e) => routerCaps.headerExtensions.some((h) => h.kind === m.type && h.uri === e.uri))
    .map((e) => ({ uri: e.uri, id: e.value }));
}

/**
 * What to produce for each sending m-line of a publisher's offer: `{ mid, kind,
 * rtpParameters }` (simulcast by rid when the offer has `a=simulcast:send`), or
 * `{ mid, kind, rejected: true }` for a section without a codec in common.
 */
export function producersFromOffer(s, routerCaps) {
  return s.media.map((m) => {
    const mid = String(m.mid ?? '');
    if (!mid) throw new SdpError('m-line without a=mid');
    const kind = m.type;
    if (kind !== 'audio' && kind !== 'video') return { mid, kind, rejected: true };
    if (m.direction === 'recvonly' || m.direction === 'inactive') {
      return { mid, kind, rejected: true };
    }
    const codecs = offeredCodecs(m, routerCaps);
    if (codecs.length === 0) return { mid, kind, rejected: true };
    const rids = (m.rids ?? []).filter((r) => r.direction === 'send').map((r) => r.id);
    const ssrcs = [...new Set((m.ssrcs ?? []).map((x) => x.id))];
    const cname = (m.ssrcs ?? []).find((x) => x.attribute === 'cname')?.value;
    let encodings;
    if (rids.length > 0) {
      encodings = rids.map((rid) => ({ rid }));
    } else if (ssrcs.length > 0) {
      encodings = [{ ssrc: Number(ssrcs[0]) }];
    } else {
      throw new SdpError(`m-line ${mid}: neither a=rid nor a=ssrc`);
    }
    return {
      mid,
      kind,
      rids,
      rtpParameters: {
        mid,
        codecs,
        headerExtensions: offeredExtensions(m, routerCaps),
        encodings,
        rtcp: { cname: cname ?? `mid${mid}`, reducedSize: true },
      },
    };
  });
}

function iceLines(transport) {
  return {
    iceUfrag: transport.iceParameters.usernameFragment,
    icePwd: transport.iceParameters.password,
    candidates: transport.iceCandidates.map((c) => ({
      foundation: c.foundation,
      component: 1,
      transport: c.protocol,
      priority: c.priority,
      ip: c.address ?? c.ip,
      port: c.port,
      type: c.type,
      ...(c.tcpType ? { tcptype: c.tcpType } : {}),
    })),
    endOfCandidates: 'end-of-candidates',
  };
}

function sessionOf(transport, sessionId, mids) {
  const fp =
    transport.dtlsParameters.fingerprints.find((f) => f.algorithm === 'sha-256') ??
    transport.dtlsParameters.fingerprints[0];
  return {
    version: 0,
    origin: {
      username: '-',
      sessionId,
      sessionVersion: 2,
      netType: 'IN',
      ipVer: 4,
      address: '0.0.0.0',
    },
    name: '-',
    timing: { start: 0, stop: 0 },
    icelite: 'ice-lite',
    fingerprint: { type: fp.algorithm, hash: fp.value },
    groups: [{ type: 'BUNDLE', mids: mids.join(' ') }],
    msidSemantic: { semantic: 'WMS', token: '*' },
    media: [],
  };
}

const rtpLines = (codecs) => ({
  rtp: codecs.map((c) => ({
    payload: c.payloadType,
    codec: c.mimeType.split('/')[1],
    rate: c.clockRate,
    ...(c.channels > 1 ? { encoding: c.channels } : {}),
  })),
  fmtp: codecs
    .filter((c) => Object.keys(c.parameters ?? {}).length > 0)
    .map((c) => ({
      payload: c.payloadType,
      config: Object.entries(c.parameters)
        .map(([k, v]) => `${k}=${v}`)
        .join(';'),
    })),
  rtcpFb: codecs.flatMap((c) =>
    (c.rtcpFeedback ?? []).map((f) => ({
      payload: c.payloadType,
      type: f.type,
      ...(f.parameter ? { subtype: f.parameter } : {}),
    })),
  ),
  payloads: codecs.map((c) => c.payloadType).join(' '),
});

/** What every m-section of ours carries: codecs, extensions, and mediasoup's ICE. */
const mediaSection = (kind, rp, transport) => ({
  type: kind,
  port: 7,
  protocol: 'UDP/TLS/RTP/SAVPF',
  connection: { version: 4, ip: '127.0.0.1' },
  ...rtpLines(rp.codecs),
  ext: rp.headerExtensions.map((e) => ({ value: e.id, uri: e.uri })),
  ...iceLines(transport),
});

/**
 * The answer to a publisher's offer: ICE-lite, mediasoup's candidates and fingerprint,
 * DTLS `passive` when the offerer may be client, and per m-line the accepted codecs,
 * extensions and simulcast rids (`recv`), or port 0 for a rejected section.
 */
export function publishAnswer(offer, transport, produced, sessionId) {
  const answer = sessionOf(
    transport,
    sessionId,
    produced.filter((p) => !p.rejected).map((p) => p.mid),
  );
  const remoteSetup = offer.media[0].setup ?? offer.setup ?? 'actpass';
  for (const [i, m] of offer.media.entries()) {
    const p = produced[i];
    if (p.rejected) {
      answer.media.push({
        type: m.type,
        port: 0,
        protocol: m.protocol,
        payloads: m.payloads,
        rtp: [],
        fmtp: [],
        mid: m.mid,
        direction: 'inactive',
      });
      continue;
    }
    answer.media.push({
      ...mediaSection(m.type, p.rtpParameters, transport),
      setup: remoteSetup === 'active' ? 'passive' : remoteSetup === 'passive' ? 'active' : 'passive',
      mid: p.mid,
      direction: 'recvonly',
      rtcpMux: 'rtcp-mux',
      rtcpRsize: 'rtcp-rsize',
      ...(p.rids.length > 0
        ? {
            rids: p.rids.map((id) => ({ id, direction: 'recv' })),
            simulcast: { dir1: 'recv', list1: p.rids.join(';') },
          }
        : {}),
    });
  }
  return sdpTransform.write(answer);
}

/**
 * The offer for a subscriber: one `sendonly` m-line per consumer (`{ mid, kind,
 * rtpParameters, streamId, trackId }`), with the consumer's SSRCs (and RTX SSRCs).
 */
export function subscribeOffer(transport, consumers, sessionId) {
  const offer = sessionOf(
    transport,
    sessionId,
    consumers.map((c) => c.mid),
  );
  for (const c of consumers) {
    const rp = c.rtpParameters;
    const enc = rp.encodings[0];
    const cname = rp.rtcp?.cname ?? 'mediasoup';
    const ssrcs = [
      { id: enc.ssrc, attribute: 'cname', value: cname },
      { id: enc.ssrc, attribute: 'msid', value: `${c.streamId} ${c.trackId}` },
    ];
    const ssrcGroups = [];
    if (enc.rtx?.ssrc) {
      ssrcs.push({ id: enc.rtx.ssrc, attribute: 'cname', value: cname });
      ssrcs.push({ id: enc.rtx.ssrc, attribute: 'msid', value: `${c.streamId} ${c.trackId}` });
      ssrcGroups.push({ semantics: 'FID', ssrcs: `${enc.ssrc} ${enc.rtx.ssrc}` });
    }
    offer.media.push({
      ...mediaSection(c.kind, rp, transport),
      setup: 'actpass',
      mid: c.mid,
      msid: [{ id: c.streamId, appdata: c.trackId }],
      direction: 'sendonly',
      rtcpMux: 'rtcp-mux',
      rtcpRsize: 'rtcp-rsize',
      ssrcs,
      ssrcGroups,
    });
  }
  return sdpTransform.write(offer);
}

/**
 * What a receiver supports, from the router's capabilities: the harness's clients take
 * any codec the router has (they answer whatever they are offered within Opus and VP8).
 */
export function consumerCapabilities(routerCaps) {
  return {
    codecs: routerCaps.codecs,
    headerExtensions: routerCaps.headerExtensions,
  };
}
