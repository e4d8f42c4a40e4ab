// Bundled by esbuild for third_party.test.mjs: Eyevinn's WHIP client and WHEP player as a
// page that imports them from npm would, exposed to the test on `window`.
import { WHIPClient } from '@eyevinn/whip-web-client';
import { WebRTCPlayer } from '@eyevinn/webrtc-player';
import { WebRTCPlayer as WebRTCPlayer011 } from 'webrtc-player-0.11';

window.WHIPClient = WHIPClient;
// 0.13 merges every stream's tracks into its <video>; 0.11 binds the first stream only,
// as pages written the usual way (`video.srcObject = e.streams[0]`) do.
window.players = { '0.13': WebRTCPlayer, '0.11': WebRTCPlayer011 };
