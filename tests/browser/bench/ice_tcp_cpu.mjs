// Benchmark (not a test): the server's CPU per forwarded packet when subscribers receive
// over ICE-TCP versus UDP. One publisher beside the server, VIEWERS Chromium viewers in
// their own namespace; rounds alternate UDP and TCP (all UDP dropped in the viewers'
// namespace), each measuring the server process's CPU time (/proc) and its forwarded
// RTP packets (/metrics) over SECONDS. Prints each round and the medians.
//
//   unshare -n bash -c 'ip link set lo up && cd tests/browser && node bench/ice_tcp_cpu.mjs [rounds] [viewers] [seconds]'
//
// Everything stays in namespaces this script creates (needs root, iproute2, nftables).
import { readFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { startServer, openParticipant, waitFor, shapedNet, inbound } from '../lib.mjs';

const [ROUNDS, VIEWERS, SECONDS] = [Number(process.argv[2] || 2), Number(process.argv[3] || 3), Number(process.argv[4] || 20)];
const TICK = 100; // USER_HZ

const cpuSeconds = (pid) => {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(f[11]) + Number(f[12])) / TICK; // utime + stime
};
const metric = async (origin, name) => {
  const text = await (await fetch(`${origin}/metrics`)).text();
  return [...text.matchAll(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\d+)`, 'gm'))].reduce((a, m) => a + Number(m[1]), 0);
};
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const net = shapedNet(String((process.pid + 13) % 10000));
const nft = (...a) => execFileSync('ip', ['netns', 'exec', net.view, 'nft', ...a], { stdio: ['ignore', 'ignore', 'pipe'] });
const blockUdp = () => {
  nft('add', 'table', 'inet', 'sbnoudp');
  nft('add', 'chain', 'inet', 'sbnoudp', 'in', '{ type filter hook input priority 0 ; }');
  nft('add', 'chain', 'inet', 'sbnoudp', 'out', '{ type filter hook output priority 0 ; }');
  nft('add', 'rule', 'inet', 'sbnoudp', 'in', 'meta', 'l4proto', 'udp', 'drop');
  nft('add', 'rule', 'inet', 'sbnoudp', 'out', 'meta', 'l4proto', 'udp', 'drop');
};
const allowUdp = () => { try { nft('delete', 'table', 'inet', 'sbnoudp'); } catch {} };

const server = await startServer([], {}, { netns: net.srv, addr: net.addr });
const origin = server.base;
const room = `cpu${Date.now()}`;
const results = { udp: [], tcp: [] };
let pub;
try {
  pub = await openParticipant(`${origin}/?room=${room}&name=cam&autojoin=1`, { secureOrigin: origin });
  await waitFor(() => pub.page.evaluate(() => window.sb.client?.pubPc?.connectionState === 'connected'), { what: 'publisher up' });
  for (let r = 0; r < ROUNDS; r++) {
    for (const mode of ['udp', 'tcp']) {
      if (mode === 'tcp') blockUdp(); else allowUdp();
      const viewers = [];
      for (let i = 0; i < VIEWERS; i++) {
        viewers.push(await openParticipant(`${origin}/?room=${room}&name=v${i}&autojoin=1&quality=low`, { netns: net.view, secureOrigin: origin }));
      }
      for (const v of viewers) await waitFor(async () => (await inbound(v.page)).video.framesDecoded > 30, { what: 'viewer decodes', timeout: 30000 });
      await new Promise((res) => setTimeout(res, 3000)); // settle (layers, estimates)
      const [c0, f0, t0] = [cpuSeconds(server.proc.pid), await metric(origin, 'switchboard_rtp_forwarded_total'), await metric(origin, 'switchboard_ice_tcp_frames_sent_total')];
      await new Promise((res) => setTimeout(res, SECONDS * 1000));
      const [c1, f1, t1] = [cpuSeconds(server.proc.pid), await metric(origin, 'switchboard_rtp_forwarded_total'), await metric(origin, 'switchboard_ice_tcp_frames_sent_total')];
      const us = ((c1 - c0) / Math.max(1, f1 - f0)) * 1e6;
      results[mode].push(us);
      console.log(`round ${r + 1} ${mode}: ${(f1 - f0)} packets forwarded (${t1 - t0} TCP frames sent), ${(c1 - c0).toFixed(2)} s CPU: ${us.toFixed(1)} µs/packet`);
      for (const v of viewers) await v.close();
      await new Promise((res) => setTimeout(res, 2000));
    }
  }
  const [u, t] = [median(results.udp), median(results.tcp)];
  console.log(`median: udp ${u.toFixed(1)} µs/packet, tcp ${t.toFixed(1)} µs/packet: tcp/udp ${(t / u).toFixed(2)}`);
} finally {
  allowUdp();
  await pub?.close();
  server.stop();
  net.cleanup();
}
