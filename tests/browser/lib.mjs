// Helpers for browser end-to-end tests: start the switchboard binary, launch Debian's
// headless Chromium with a fake camera and microphone, read WebRTC stats.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
export const BIN = process.env.SWITCHBOARD_BIN || join(here, '../../target/debug/switchboard');

// Start the server on a free HTTP port; resolves with { base, proc, stop() }.
export function startServer(extraArgs = [], env = {}) {
  const rtcPort = 20000 + Math.floor(Math.random() * 20000);
  const args = ['--http', '127.0.0.1:0', '--rtc-port', String(rtcPort), '--workers', '2', ...extraArgs];
  const proc = spawn(BIN, args, { env: { ...process.env, RUST_LOG: 'info', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  proc.stderr.on('data', (d) => { log += d; });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start:\n${log}`)), 20000);
    proc.on('exit', (code) => reject(new Error(`server exited ${code}:\n${log}`)));
    let out = '';
    proc.stdout.on('data', (d) => {
      out += d;
      const m = out.match(/open (http:\/\/[^\s/]+)\//);
      if (m) {
        clearTimeout(timer);
        resolve({ base: m[1], proc, log: () => log, stop: () => proc.kill('SIGINT') });
      }
    });
  });
}

export const CHROMIUM_ARGS = [
  '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
  '--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream=fps=30',
  '--allow-loopback-in-peer-connection', '--disable-features=WebRtcHideLocalIpsWithMdns',
  '--autoplay-policy=no-user-gesture-required',
];

// One Chromium instance (a separate process tree), one page.
export async function openParticipant(url) {
  const dir = mkdtempSync(join(tmpdir(), 'sb-chromium-'));
  const ctx = await chromium.launchPersistentContext(dir, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: CHROMIUM_ARGS,
  });
  const page = ctx.pages()[0] || (await ctx.newPage());
  page.on('console', (m) => { if (m.type() === 'error') console.log(`[page] ${m.text()}`); });
  await page.goto(url);
  return { page, close: async () => { await ctx.close(); rmSync(dir, { recursive: true, force: true }); } };
}

// Inbound RTP stats of the subscriber connection, by kind: summed over streams.
export async function inbound(page) {
  return page.evaluate(async () => {
    const pc = window.sb.client?.subPc;
    const out = { audio: { packetsReceived: 0, totalSamplesReceived: 0 }, video: { packetsReceived: 0, framesDecoded: 0, frameWidth: 0 } };
    if (!pc) return out;
    for (const s of (await pc.getStats()).values()) {
      if (s.type !== 'inbound-rtp') continue;
      const o = out[s.kind];
      o.packetsReceived += s.packetsReceived || 0;
      if (s.kind === 'audio') o.totalSamplesReceived += s.totalSamplesReceived || 0;
      if (s.kind === 'video') { o.framesDecoded += s.framesDecoded || 0; o.frameWidth = Math.max(o.frameWidth, s.frameWidth || 0); }
    }
    return out;
  });
}

export async function waitFor(fn, { timeout = 30000, interval = 250, what = 'condition' } = {}) {
  const end = Date.now() + timeout;
  let last;
  while (Date.now() < end) {
    try { last = await fn(); if (last) return last; } catch (e) { last = e; }
    await new Promise((r) => setTimeout(r, interval));
  }
  throw new Error(`timed out waiting for ${what} (last: ${JSON.stringify(last)})`);
}

// An HS256 JWT signed with the development key the server prints in dev mode.
import { createHmac } from 'node:crypto';
export function devToken(video, ttl = 600, sub = 'test-admin') {
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const body = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64({ iss: 'devkey', sub, exp: Math.floor(Date.now() / 1000) + ttl, video })}`;
  const sig = createHmac('sha256', 'switchboard-development-secret-do-not-use-in-production').update(body).digest('base64url');
  return `${body}.${sig}`;
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
