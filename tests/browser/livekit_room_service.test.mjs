// LiveKit's RoomService over Twirp (issue 32, item 5), driven by LiveKit's own server SDK
// (`livekit-server-sdk` from npm, `RoomServiceClient`, JSON bodies): rooms are created
// (and created again: the existing one comes back), listed, given metadata and deleted;
// a participant who joined over our WebSocket with a LiveKit token is listed, fetched,
// updated (metadata, name, attributes: it is told), sent data and removed; errors come
// back as Twirp errors the SDK understands.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AccessToken, RoomServiceClient, DataPacket_Kind } from 'livekit-server-sdk';
import { startServer, openParticipant, TEST_SECRET, wsJoin, waitFor } from './lib.mjs';

test("livekit-server-sdk's RoomServiceClient manages rooms and participants", async () => {
  const server = await startServer();
  const svc = new RoomServiceClient(server.base, 'devkey', TEST_SECRET);
  const room = `lkrs${Date.now()}`;
  let page;
  try {
    const created = await svc.createRoom({ name: room, emptyTimeout: 60, maxParticipants: 5, metadata: 'v1' });
    assert.equal(created.name, room);
    assert.equal(created.maxParticipants, 5);
    assert.match(created.sid, /^RM_/);
    const again = await svc.createRoom({ name: room });
    assert.equal(again.sid, created.sid, 'CreateRoom of an existing room returns it');
    assert.ok((await svc.listRooms()).some((r) => r.name === room));
    assert.deepEqual((await svc.listRooms([room])).map((r) => r.name), [room]);
    assert.equal((await svc.updateRoomMetadata(room, 'v2')).metadata, 'v2');

    // A participant joins with a LiveKit token over our WebSocket, and keeps its socket.
    const at = new AccessToken('devkey', TEST_SECRET, { identity: 'alice', name: 'Alice' });
    at.addGrant({ roomJoin: true, room });
    page = await openParticipant(`${server.base}/`);
    await page.page.evaluate(() => { window.got = []; });
    const joined = await wsJoin(page.page, `${server.base.replace('http', 'ws')}/ws`, await at.toJwt());
    assert.equal(joined.type, 'joined', JSON.stringify(joined));
    await page.page.evaluate(() => { window.keep.addEventListener('message', (m) => window.got.push(JSON.parse(m.data))); });
    const got = () => page.page.evaluate(() => window.got);

    const listed = await svc.listParticipants(room);
    assert.deepEqual(listed.map((p) => p.identity), ['alice']);
    const alice = await svc.getParticipant(room, 'alice');
    assert.match(alice.sid, /^PA_\d+$/);
    assert.equal(alice.name, 'Alice');
    assert.equal(alice.permission.canPublish, true);

    const updated = await svc.updateParticipant(room, 'alice', { metadata: 'md', name: 'Alice B', attributes: { team: 'red' } });
    assert.deepEqual([updated.metadata, updated.name, updated.attributes.team], ['md', 'Alice B', 'red']);
    await waitFor(async () => (await got()).some((m) => m.type === 'participant_updated' && m.participant.name === 'Alice B'), { what: 'alice told of her update', timeout: 5000 });
    const perms = await svc.updateParticipant(room, 'alice', { permission: { canPublish: false, canSubscribe: true, canPublishData: true } });
    assert.equal(perms.permission.canPublish, false);
    assert.equal(perms.metadata, 'md', 'an empty metadata leaves it as it was');

    await svc.sendData(room, new TextEncoder().encode('hello from the API'), DataPacket_Kind.RELIABLE, { topic: 'ops', destinationIdentities: ['alice'] });
    await waitFor(async () => (await got()).some((m) => m.type === 'data' && m.payload === 'hello from the API' && m.topic === 'ops'), { what: 'the data message', timeout: 5000 });
    await svc.sendData(room, new TextEncoder().encode('to a sid'), DataPacket_Kind.RELIABLE, { destinationSids: [alice.sid] });
    await waitFor(async () => (await got()).some((m) => m.type === 'data' && m.payload === 'to a sid'), { what: 'the data message to a sid', timeout: 5000 });

    // Errors, as the SDK reports them.
    await assert.rejects(svc.getParticipant(room, 'nobody'), (e) => e.code === 'not_found' && e.status === 404);
    await assert.rejects(svc.mutePublishedTrack(room, 'alice', 'TR_999999', true), (e) => e.code === 'not_found');
    // UpdateSubscriptions: a track that does not exist is no error (nothing to change); an
    // identity that is not there is (tests/browser/livekit_client.test.mjs subscribes a
    // LiveKit client this way).
    await svc.updateSubscriptions(room, 'alice', ['TR_999999'], false);
    await assert.rejects(svc.updateSubscriptions(room, 'nobody', ['TR_1'], true), (e) => e.code === 'not_found');
    const stranger = new RoomServiceClient(server.base, 'devkey', 'a-different-secret-of-enough-length');
    await assert.rejects(stranger.listRooms(), (e) => e.code === 'unauthenticated' && e.status === 401);

    await svc.removeParticipant(room, 'alice');
    await waitFor(async () => (await svc.listParticipants(room)).length === 0, { what: 'alice removed', timeout: 5000 });
    await svc.deleteRoom(room);
    assert.ok(!(await svc.listRooms()).some((r) => r.name === room), 'the room is gone');
  } finally {
    await page?.close();
    await server.stop();
  }
});
