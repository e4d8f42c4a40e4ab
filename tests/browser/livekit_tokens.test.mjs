// LiveKit's access tokens (issue 32, item 1): tokens minted by LiveKit's own server SDK
// (`livekit-server-sdk` from npm, `AccessToken`) with one of the server's key pairs join
// rooms and call the REST API: identity, name, metadata, attributes and kind reach the
// participant; the video grant's permissions and the `sip` grant apply.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AccessToken } from 'livekit-server-sdk';
import { startServer, openParticipant, freePort, TEST_SECRET, wsJoin } from './lib.mjs';

const mint = async (identity, grant, extra = {}, sip = null) => {
  const at = new AccessToken('devkey', TEST_SECRET, { identity, ttl: '10m', ...extra });
  at.addGrant(grant);
  if (sip) at.addSIPGrant(sip);
  if (extra.kind) at.kind = extra.kind;
  return at.toJwt();
};

test("livekit-server-sdk's access tokens join rooms and call the API", async () => {
  const sipPort = await freePort();
  const server = await startServer(['--sip-listen', `127.0.0.1:${sipPort}`]);
  const room = `lk${Date.now()}`;
  let page;
  try {
    // An admin token as LiveKit's tooling makes it: create and list rooms.
    const admin = await mint('ops', { roomCreate: true, roomList: true });
    const api = (path, token, init = {}) => fetch(`${server.base}${path}`, { ...init, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' } });
    assert.equal((await api('/api/v1/rooms', admin, { method: 'POST', body: JSON.stringify({ name: room }) })).status, 201);
    const listed = await (await api('/api/v1/rooms', admin)).json();
    assert.ok(listed.rooms.some((r) => r.name === room), 'the room is listed');

    // A participant token: an agent that may not publish, with attributes and a SIP grant.
    const token = await mint('alice', { roomJoin: true, room, canPublish: false }, { name: 'Alice', metadata: 'hello', attributes: { team: 'blue' }, kind: 'agent' }, { call: true });
    page = await openParticipant(`${server.base}/`);
    const joined = await wsJoin(page.page, `${server.base.replace('http', 'ws')}/ws`, token);
    assert.equal(joined.type, 'joined', JSON.stringify(joined));
    const p = joined.participant;
    console.log('joined as', JSON.stringify({ identity: p.identity, name: p.name, kind: p.kind, metadata: p.metadata, attributes: p.attributes, permissions: p.permissions }));
    assert.deepEqual([p.identity, p.name, p.kind, p.metadata], ['alice', 'Alice', 'agent', 'hello']);
    assert.deepEqual(p.attributes, { team: 'blue' });
    assert.equal(p.permissions.can_publish, false);
    assert.equal(p.permissions.can_subscribe, true);
    // The SIP grant (`sip.call`) lets it see the room's calls; a token without it may not.
    assert.equal((await api(`/api/v1/sip/calls?room=${room}`, token)).status, 200);
    const plain = await mint('bob', { roomJoin: true, room });
    assert.equal((await api(`/api/v1/sip/calls?room=${room}`, plain)).status, 403);
    // A token signed with another secret is refused like any forged one.
    const forged = await new AccessToken('devkey', 'another-secret-of-32-characters!!', { identity: 'eve' });
    forged.addGrant({ roomList: true });
    assert.equal((await api('/api/v1/rooms', await forged.toJwt())).status, 401);
  } finally {
    await page?.close();
    await server.stop();
  }
});
