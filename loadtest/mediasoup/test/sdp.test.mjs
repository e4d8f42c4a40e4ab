// Unit tests of the SDP <-> mediasoup translation, on SDPs recorded from the harness's
// str0m clients (fixtures/publisher-offer.sdp, written with SB_DUMP_SDP=DIR during a run
// against the bridge).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import * as sdpTransform from 'sdp-transform';
import {
  SdpError,
  parse,
  dtlsParameters,
  producersFromOffer,
  publishAnswer,
  subscribeOffer,
} from '../sdp.mjs';

const fixture = (name) => readFileSync(new URL(`./fixtures/${name}`, import.meta.url), 'utf8');

// What mediasoup 3.27's router offers for Opus + VP8 (its rtpCapabilities, abridged to
// what the translation reads).
const routerCaps = {
  codecs: [
    { kind: 'audio', mimeType: 'audio/opus', clockRate: 48000, channels: 2, preferredPayloadType: 100 },
    { kind: 'video', mimeType: 'video/VP8', clockRate: 90000, preferredPayloadType: 101 },
    { kind: 'video', mimeType: 'video/rtx', clockRate: 90000, preferredPayloadType: 102, parameters: { apt: 101 } },
  ],
  headerExtensions: [
    { kind: 'audio', uri: 'urn:ietf:params:rtp-hdrext:sdes:mid', preferredId: 1 },
    { kind: 'video', uri: 'urn:ietf:params:rtp-hdrext:sdes:mid', preferredId: 1 },
    { kind: 'video', uri: 'urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id', preferredId: 2 },
    { kind: 'video', uri: 'urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id', preferredId: 3 },
    { kind: 'audio', uri: 'http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time', preferredId: 4 },
    { kind: 'video', uri: 'http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time', preferredId: 4 },
    { kind: 'video', uri: 'http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01', preferredId: 5 },
    { kind: 'audio', uri: 'urn:ietf:params:rtp-hdrext:ssrc-audio-level', preferredId: 10 },
  ],
};

const transport = {
  iceParameters: { usernameFragment: 'msufrag', password: 'mspassword0123456789abcd' },
  iceCandidates: [{ foundation: 'udpcandidate', priority: 1076302079, address: '10.99.77.1', protocol: 'udp', port: 40012, type: 'host' }],
  dtlsParameters: { fingerprints: [{ algorithm: 'sha-256', value: 'AA:BB:CC' }] },
};

test('a simulcast publisher offer becomes Opus and VP8 producers with rids', () => {
  const offer = parse(fixture('publisher-offer.sdp'));
  const p = producersFromOffer(offer, routerCaps);
  const audio = p.find((x) => x.kind === 'audio');
  const video = p.find((x) => x.kind === 'video');
  assert.equal(audio.rtpParameters.codecs[0].mimeType.toLowerCase(), 'audio/opus');
  assert.equal(video.rtpParameters.codecs[0].mimeType, 'video/VP8');
  // VP8's RTX rides along (apt), and no codec the router lacks.
  assert.ok(video.rtpParameters.codecs.every((c) => ['video/VP8', 'video/rtx'].includes(c.mimeType)));
  assert.deepEqual(video.rtpParameters.encodings.map((e) => e.rid), ['q', 'h', 'f']);
  // The rid and mid extensions mediasoup needs to tell the layers apart.
  const uris = video.rtpParameters.headerExtensions.map((e) => e.uri);
  assert.ok(uris.includes('urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id'));
  assert.ok(uris.includes('urn:ietf:params:rtp-hdrext:sdes:mid'));
  assert.ok(video.rtpParameters.codecs[0].rtcpFeedback.some((f) => f.type === 'nack'));
  assert.deepEqual(dtlsParameters(offer).role, 'client'); // actpass: mediasoup is server
});

test('the publish answer accepts each section recvonly with the simulcast rids', () => {
  const offer = parse(fixture('publisher-offer.sdp'));
  const p = producersFromOffer(offer, routerCaps);
  const a = sdpTransform.parse(publishAnswer(offer, transport, p, 7));
  assert.equal(a.icelite, 'ice-lite');
  assert.equal(a.media.length, offer.media.length);
  for (const m of a.media) {
    assert.equal(m.direction, 'recvonly');
    assert.equal(m.setup, 'passive');
    assert.equal(m.iceUfrag, 'msufrag');
    assert.equal(m.candidates[0].port, 40012);
  }
  const v = a.media.find((m) => m.type === 'video');
  assert.equal(v.simulcast.list1, 'q;h;f');
  assert.deepEqual(v.rids.map((r) => [r.id, r.direction]), [['q', 'recv'], ['h', 'recv'], ['f', 'recv']]);
  // The mids are bundled in offer order.
  assert.equal(a.groups[0].mids, offer.media.map((m) => m.mid).join(' '));
});

test('a subscribe offer carries each consumer as a sendonly section with its SSRCs', () => {
  const consumers = [
    { mid: '0', kind: 'audio', streamId: 'p1', trackId: 'a1',
      rtpParameters: { codecs: [{ mimeType: 'audio/opus', payloadType: 100, clockRate: 48000, channels: 2, parameters: { useinbandfec: 1 }, rtcpFeedback: [] }],
        headerExtensions: [{ uri: 'urn:ietf:params:rtp-hdrext:sdes:mid', id: 1 }], encodings: [{ ssrc: 111 }], rtcp: { cname: 'c' } } },
    { mid: '1', kind: 'video', streamId: 'p1', trackId: 'v1',
      rtpParameters: { codecs: [
        { mimeType: 'video/VP8', payloadType: 101, clockRate: 90000, parameters: {}, rtcpFeedback: [{ type: 'nack', parameter: '' }, { type: 'nack', parameter: 'pli' }] },
        { mimeType: 'video/rtx', payloadType: 102, clockRate: 90000, parameters: { apt: 101 }, rtcpFeedback: [] }],
        headerExtensions: [], encodings: [{ ssrc: 222, rtx: { ssrc: 223 } }], rtcp: { cname: 'c' } } },
  ];
  const o = sdpTransform.parse(subscribeOffer(transport, consumers, 9));
  assert.deepEqual(o.media.map((m) => [String(m.mid), m.direction]), [['0', 'sendonly'], ['1', 'sendonly']]);
  const v = o.media[1];
  assert.equal(v.ssrcGroups[0].semantics, 'FID');
  assert.equal(v.ssrcGroups[0].ssrcs, '222 223');
  assert.equal(v.fmtp.find((f) => f.payload === 102).config, 'apt=101');
  assert.ok(v.rtcpFb.some((f) => f.type === 'nack' && f.subtype === 'pli'));
  // Both of a publisher's tracks share its stream id (one MediaStream per publisher).
  assert.equal(o.media[0].msid[0].id, o.media[1].msid[0].id);
});

test('the DTLS role follows the remote a=setup', () => {
  const offer = fixture('publisher-offer.sdp');
  assert.equal(dtlsParameters(parse(offer)).role, 'client'); // actpass: mediasoup serves
  const active = offer.replaceAll('a=setup:actpass', 'a=setup:active');
  const passive = offer.replaceAll('a=setup:actpass', 'a=setup:passive');
  assert.equal(dtlsParameters(parse(active)).role, 'client');
  assert.equal(dtlsParameters(parse(passive)).role, 'server');
  assert.match(dtlsParameters(parse(offer)).fingerprints[0].value, /^[0-9A-F:]+$/);
});

test('malformed SDP is refused with an SdpError', () => {
  assert.throws(() => parse('hello'), SdpError);
  assert.throws(() => parse(42), SdpError);
  assert.throws(() => parse('v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n'), SdpError);
  const noMid = 'v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=rtpmap:111 opus/48000/2\r\n';
  assert.throws(() => producersFromOffer(parse(noMid), routerCaps), SdpError);
  const noFp = parse('v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\n');
  assert.throws(() => dtlsParameters(noFp), SdpError);
});

test('a section without a codec in common is rejected, not produced', () => {
  const h264 = 'v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 127\r\na=mid:0\r\na=sendonly\r\na=rtpmap:127 H264/90000\r\na=ssrc:5 cname:x\r\n';
  const p = producersFromOffer(parse(h264), routerCaps);
  assert.equal(p[0].rejected, true);
});
