// TURN: the server hands out short-lived coturn credentials (TURN REST API scheme) in
// the join response; a browser forced to relay (iceTransportPolicy 'relay') joins
// through a Debian coturn started here with the shared secret, sends and receives media
// over relay candidates; a server configured with the wrong secret leaves the client with
// a clear TURN error. Everything on loopback inside the test's namespace.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { startServer, openParticipant, waitFor, waitForTileVideo } from './lib.mjs';

function haveCoturn() {
  try { execFileSync('turnserver', ['--help'], { stdio: 'ignore' }); return true; } catch (e) { return e.status !== undefined && e.status !== 127; }
}

function startCoturn(port, secret) {
  const proc = spawn('turnserver', [
    '-n', '--listening-ip=127.0.0.1', `--listening-port=${port}`, '--relay-ip=127.0.0.1',
    '--use-auth-secret', `--static-auth-secret=${secret}`, '--realm=switchboard',
    '--allow-loopback-peers', '--no-cli', '--no-tls', '--no-dtls', '--simple-log',
    `--min-port=${port + 10}`, `--max-port=${port + 200}`, '--log-file=stdout', '--no-software-attribute',
  ], { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  proc.stdout.on('data', (d) => { log += d; });
  proc.stderr.on('data', (d) => { log += d; });
  return { proc, log: () => log, stop: () => proc.kill('SIGTERM') };
}

// The local candidate types of a connection's selected pair.
const selected = (page, which) => page.evaluate(async (which) => {
  const pc = window.sb.client?.[which];
  if (!pc) return null;
  const stats = [...(await pc.getStats()).values()];
  const pair = stats.find((s) => s.type === 'candidate-pair' && s.nominated && s.state === 'succeeded');
  if (!pair) return null;
  const local = stats.find((s) => s.id === pair.localCandidateId);
  return local ? { type: local.candidateType, relayProtocol: local.relayProtocol } : null;
}, which);

test('a relay-only browser joins through coturn with the credentials the server hands out', { skip: !haveCoturn() && 'coturn (turnserver) is not installed' }, async () => {
  const secret = `s${Date.now()}`;
  const turnPort = 30000 + Math.floor(Math.random() * 20000);
  const coturn = startCoturn(turnPort, secret);
  const turnUrl = `turn:127.0.0.1:${turnPort}?transport=udp`;
  const server = await startServer(['--turn-urls', turnUrl, '--turn-secret', secret, '--turn-ttl', '600']);
  const wrong = await startServer(['--turn-urls', turnUrl, '--turn-secret', 'not-the-secret']);
  const room = `turn${Date.now()}`;
  const pages = [];
  try {
    const pub = await openParticipant(`${server.base}/?room=${room}&name=direct&autojoin=1&quality=low`);
    pages.push(pub);
    // The publisher's own camera playing (its preview, #local) before the relayed page.
    await waitFor(() => pub.page.evaluate(() => document.querySelector('#local').videoWidth > 0), { what: 'the publisher joined with its camera' });
    const t0 = Date.now();
    const relay = await openParticipant(`${server.base}/?room=${room}&name=relayed&autojoin=1&quality=low&relay=1`);
    pages.push(relay);
    // The join response carried the TURN server with REST-scheme credentials (read once
    // joined: before the answer the client's list is the empty default).
    const ice = await waitFor(() => relay.page.evaluate(() => window.sb.client?.me && window.sb.client.iceServers), { what: 'the joined answer', timeout: 20000 });
    assert.equal(ice.length, 1, JSON.stringify(ice));
    assert.deepEqual(ice[0].urls, [turnUrl]);
    const [expiry, who] = ice[0].username.split(':');
    assert.ok(Number(expiry) > Date.now() / 1000 + 500 && Number(expiry) < Date.now() / 1000 + 700, ice[0].username);
    assert.ok(who.length > 0 && ice[0].credential.length === 28, JSON.stringify(ice[0]));
    // Media both ways: each sees the other's video.
    await waitForTileVideo(relay.page, 'direct');
    const relayedMs = Date.now() - t0;
    await waitForTileVideo(pub.page, 'relayed');
    const sub = await waitFor(() => selected(relay.page, 'subPc'), { what: 'the relayed subscriber pair' });
    const pubPair = await waitFor(() => selected(relay.page, 'pubPc'), { what: 'the relayed publisher pair' });
    console.log('relay-only browser: subscriber', JSON.stringify(sub), 'publisher', JSON.stringify(pubPair));
    assert.equal(sub.type, 'relay');
    assert.equal(pubPair.type, 'relay');
    assert.deepEqual(await relay.page.evaluate(() => window.sb.errors), []);
    // Join time, page load to the other's video playing, relayed vs a direct (UDP host)
    // page opened the same way (one sample each; docs/benchmarks.md).
    const t1 = Date.now();
    const direct = await openParticipant(`${server.base}/?room=${room}&name=direct2&autojoin=1&quality=low`);
    pages.push(direct);
    await waitForTileVideo(direct.page, 'direct');
    console.log(`join to video: relayed through coturn ${relayedMs} ms, direct ${Date.now() - t1} ms`);
    // A server whose secret coturn does not share: the client reports the TURN refusal.
    const bad = await openParticipant(`${wrong.base}/?room=${room}x&name=refused&autojoin=1&quality=low&relay=1`);
    pages.push(bad);
    const err = await waitFor(() => bad.page.evaluate(() => window.sb.errors.find((e) => e.code === 'turn')),
      { what: 'a TURN error in the client', timeout: 20000 });
    console.log('wrong secret:', JSON.stringify(err));
    assert.match(err.message, /401/);
    assert.match(await bad.page.evaluate(() => document.querySelector('#status').textContent), /TURN/);
  } finally {
    for (const p of pages) await p.close();
    server.stop();
    wrong.stop();
    coturn.stop();
  }
});
