// Drives Debian's Chromium (headless, fake camera and microphone) through raum's web
// client. Called by the Rust browser tests with one JSON argument:
//   {"scenario": "call" | "full" | "waiting" | "denied" | "phone" | "simulcast" |
//    "class" | "firewalled" | "lesson" | "share" | "firstcall" | "contrast" |
//    "stage" | "devices" | "weak", "url": "...", ...}
// ("call" takes "reconnect": true to survive a signaling drop the caller causes).
// Prints one JSON line with what it observed and exits 0, or prints the failure to
// stderr and exits 1. The Rust side decides what to assert; this script only fails
// when the page itself does not get where a participant would get.
'use strict';

const { chromium } = require('playwright-core');

const args = JSON.parse(process.argv[2]);
const CHROMIUM = process.env.RAUM_CHROMIUM || '/usr/bin/chromium';
const TIMEOUT = 30000;

function sleep(ms) { return new Promise((r) => setTimeout(r, ms)); }

async function until(what, fn, timeout = TIMEOUT) {
  const end = Date.now() + timeout;
  let last;
  while (Date.now() < end) {
    try { last = await fn(); if (last) return last; } catch (e) { last = e; }
    await sleep(250);
  }
  throw new Error(`timed out waiting for ${what} (last: ${JSON.stringify(String(last))})`);
}

async function launch(grant = true, executablePath = CHROMIUM, devices = 1) {
  return chromium.launch({
    executablePath,
    headless: true,
    args: [
      // Fake cameras (fake_device_0, ...), microphones and speakers (three of each
      // audio kind come anyway).
      devices > 1 ? `--use-fake-device-for-media-stream=device-count=${devices}` : '--use-fake-device-for-media-stream',
      // Without this flag the (headless) permission prompt is answered "deny".
      ...(grant ? ['--use-fake-ui-for-media-stream'] : []),
      '--autoplay-policy=no-user-gesture-required',
      '--no-sandbox',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-dev-shm-usage',
      '--no-first-run',
      // A page served from a test network's address (not localhost) is no secure
      // context, and without one there is no camera: the caller names its origin.
      ...(args.secureOrigin ? [`--unsafely-treat-insecure-origin-as-secure=${args.secureOrigin}`] : []),
    ],
  });
}

async function participant(browser, name, url, locale) {
  const context = await browser.newContext({
    locale: locale || 'en-US',
    viewport: { width: 1000, height: 700 },
    userAgent: `raum-browser-test/${name}`,
  });
  const page = await context.newPage();
  page.on('pageerror', (e) => process.stderr.write(`[${name}] page error: ${e}\n`));
  await page.goto(url);
  return { name, page, context };
}

async function join(p) {
  await p.page.waitForSelector('#join-form');
  // The preview and device lists come after the (fake) permission prompt.
  await until(`${p.name}: devices listed`, () =>
    p.page.evaluate(() => !document.getElementById('camera') || document.getElementById('camera').options.length > 0));
  await p.page.fill('#name', p.name);
  await p.page.click('#join');
  await until(`${p.name}: joined`, () => p.page.evaluate(() => window.raum && window.raum.id !== null));
}

// What a page receives: per remote video track its framesDecoded, audio packets, and
// the tiles of the grid.
async function stats(p) {
  return p.page.evaluate(async () => {
    const out = { video: {}, audioPackets: 0, tiles: window.raum.tiles.filter((t) => t !== 'self').sort() };
    const pc = window.raum.pc;
    if (!pc) return out;
    const report = await pc.getStats();
    report.forEach((r) => {
      if (r.type === 'inbound-rtp' && r.kind === 'video') out.video[r.trackIdentifier] = r.framesDecoded || 0;
      if (r.type === 'inbound-rtp' && r.kind === 'audio') out.audioPackets += r.packetsReceived || 0;
    });
    // Only the tracks that are on screen now.
    const shown = new Set();
    document.querySelectorAll('.tile:not([data-peer="self"]) video').forEach((v) => {
      if (v.srcObject) v.srcObject.getVideoTracks().forEach((t) => shown.add(t.id));
    });
    for (const id of Object.keys(out.video)) if (!shown.has(id)) delete out.video[id];
    out.playing = [...document.querySelectorAll('.tile:not([data-peer="self"]) video')]
      .filter((v) => v.videoWidth > 0 && !v.paused).length;
    return out;
  });
}

// Waits until `p` shows `n` remote videos whose frames keep coming, and audio.
async function receiving(p, n) {
  const first = await until(`${p.name}: ${n} remote videos`, async () => {
    const s = await stats(p);
    return Object.keys(s.video).length === n && s.tiles.length === n && s.playing === n ? s : null;
  });
  await sleep(2000);
  const second = await stats(p);
  const rising = Object.keys(first.video).filter((id) => (second.video[id] || 0) > first.video[id]);
  if (rising.length !== n) throw new Error(`${p.name}: frames rise on ${rising.length} of ${n} videos (${JSON.stringify(first)} then ${JSON.stringify(second)})`);
  if (!(second.audioPackets > first.audioPackets)) throw new Error(`${p.name}: no audio packets arrive`);
  const captions = await p.page.evaluate(() =>
    [...document.querySelectorAll('.tile:not([data-peer="self"]) figcaption')].map((c) => c.textContent).sort());
  return { videos: rising.length, captions, framesBefore: first.video, framesAfter: second.video, audioPackets: second.audioPackets };
}

// What `read` gives once it gives `want`, waiting up to `timeout` for it: for a
// page that hears of something by a broadcast, perhaps a moment after another page.
// The last value read otherwise, for the caller to assert on.
async function settles(read, want, timeout = 5000) {
  const end = Date.now() + timeout;
  let last = await read();
  while (last !== want && Date.now() < end) {
    await sleep(250);
    last = await read();
  }
  return last;
}

// Opens the people or chat panel if it is closed (phones start with both closed).
async function openPanel(p, name) {
  const open = await p.page.evaluate((n) => !document.getElementById(`${n}-panel`).hidden, name);
  if (!open) await p.page.click(`#${name}-toggle`);
  await until(`${p.name}: ${name} open`, () => p.page.evaluate((n) => !document.getElementById(`${n}-panel`).hidden, name));
}

async function chatArrives(p, text) {
  await until(`${p.name}: chat "${text}"`, () =>
    p.page.evaluate((t) => [...document.querySelectorAll('#messages li span')].some((s) => s.textContent === t), text));
}

async function call() {
  const browser = await launch();
  try {
    const names = args.names || ['Ada', 'Grace', 'Linus'];
    const ps = [];
    for (const name of names) ps.push(await participant(browser, name, args.url, args.locale));
    for (const p of ps) await join(p);
    const ids = await Promise.all(ps.map((p) => p.page.evaluate(() => window.raum.id)));
    const result = { joined: new Set(ids.filter((id) => id !== null)).size, received: {} };
    for (const p of ps) result.received[p.name] = await receiving(p, ps.length - 1);
    // The fake microphones beep: each page rings the tiles of who is heard, its own
    // too, at some moment within a few seconds.
    result.talking = {};
    for (const p of ps) {
      const seen = new Set();
      const end = Date.now() + 6000;
      while (Date.now() < end && seen.size < ps.length) {
        for (const id of await p.page.evaluate(() => window.raum.talking)) seen.add(id);
        await sleep(100);
      }
      result.talking[p.name] = { self: seen.has('self'), others: [...seen].filter((id) => id !== 'self').length };
    }
    const text = 'Hallo from the test';
    await ps[0].page.fill('#chat-input', text);
    await ps[0].page.press('#chat-input', 'Enter');
    for (const p of ps.slice(1)) await chatArrives(p, text);
    result.chatSeenBy = ps.length - 1;
    if (args.screenshot) await ps[0].page.screenshot({ path: args.screenshot, fullPage: true });
    // The last one leaves: the others' grids shrink.
    const leaver = ps[ps.length - 1];
    await leaver.page.click('#leave');
    await until(`${leaver.name}: left page`, () => leaver.page.isVisible('#end'));
    for (const p of ps.slice(0, -1)) {
      await until(`${p.name}: grid shrinks`, async () => (await stats(p)).tiles.length === ps.length - 2);
    }
    result.afterLeave = {};
    for (const p of ps.slice(0, -1)) result.afterLeave[p.name] = (await stats(p)).tiles.length;
    if (args.reconnect) {
      // The Rust side cuts the signaling path (restarts the gateway) after this line.
      process.stdout.write(JSON.stringify({ ready: true }) + '\n');
      const stay = ps.slice(0, -1);
      // Each page says so in its banner (kept in a log: it may be up only briefly).
      await until('pages notice the lost connection', async () => {
        const seen = await Promise.all(stay.map((p) => p.page.evaluate(() => window.raum.banners.length)));
        return seen.every((n) => n > 0) ? seen : null;
      });
      result.reconnected = 0;
      result.afterReconnect = {};
      result.banners = {};
      for (const p of stay) {
        result.afterReconnect[p.name] = await receiving(p, stay.length - 1);
        result.reconnected += 1;
        // What the banner said, and that it went once the call was back.
        result.banners[p.name] = await p.page.evaluate(() => ({
          shown: window.raum.banners, now: document.getElementById('banner').hidden ? null : document.getElementById('banner').textContent,
        }));
      }
    }
    process.stdout.write(JSON.stringify(result) + '\n');
  } finally {
    await browser.close();
  }
}

// A meeting for two: two join, a third (page opened earlier) is told it is full.
async function full() {
  const browser = await launch();
  try {
    const a = await participant(browser, 'A', args.url, args.locale);
    const b = await participant(browser, 'B', args.url, args.locale);
    const c = await participant(browser, 'C', args.url, args.locale);
    await join(a);
    await join(b);
    await c.page.fill('#name', 'C');
    await c.page.click('#join');
    await until('C: told the meeting is full', () => c.page.isVisible('#end'));
    const title = await c.page.textContent('#end-title');
    const text = await c.page.textContent('#end-text');
    process.stdout.write(JSON.stringify({ title, text, lang: await c.page.getAttribute('html', 'lang') }) + '\n');
  } finally {
    await browser.close();
  }
}

// A meeting that starts soon: the waiting page turns into the join page by itself.
async function waiting() {
  const browser = await launch();
  try {
    const p = await participant(browser, 'Early', args.url, args.locale);
    const before = await p.page.getAttribute('body', 'data-page');
    const heading = await p.page.textContent('h1');
    const starts = await p.page.textContent('#starts');
    const countdown = await until('a countdown', async () => (await p.page.textContent('#countdown')) || null);
    await until('the join page', async () => (await p.page.getAttribute('body', 'data-page')) === 'join', 40000);
    const after = await p.page.getAttribute('body', 'data-page');
    const name = await p.page.inputValue('#name');
    process.stdout.write(JSON.stringify({ before, heading, starts, countdown, after, name }) + '\n');
  } finally {
    await browser.close();
  }
}

// Camera and microphone permission denied: the lobby explains it, and joining without
// them still works.
async function denied() {
  const browser = await launch(false);
  try {
    const p = await participant(browser, 'Denied', args.url, args.locale);
    const message = await until('the permission message', async () => {
      const t = await p.page.textContent('#lobby-msg');
      return t && t.length ? t : null;
    });
    await p.page.fill('#name', 'Denied');
    await p.page.click('#join');
    await until('joined without devices', () => p.page.evaluate(() => window.raum && window.raum.id !== null));
    process.stdout.write(JSON.stringify({ message, lang: await p.page.getAttribute('html', 'lang') }) + '\n');
  } finally {
    await browser.close();
  }
}

// A phone-sized screen, in German with a long name: the call fits its width (no
// horizontal scrolling), the toolbar is one row also with the microphone muted
// ("Stummschaltung aufheben"), names are cut short inside their tiles, and every
// control can be reached with the Tab key alone; people and chat open over the stage
// above the toolbar.
async function phone() {
  const browser = await launch();
  try {
    const context = await browser.newContext({ locale: args.locale || 'de-DE', viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
    // As on phones, whose browsers cannot share a screen.
    await context.addInitScript(() => { delete MediaDevices.prototype.getDisplayMedia; });
    const page = await context.newPage();
    await page.goto(args.url);
    await until('devices listed', () => page.evaluate(() => document.getElementById('camera').options.length > 0));
    // Keyboard only: focus starts in the name field; type, Tab to Join, press Enter.
    await page.keyboard.type('Maximilian Mustermann-Schmidt');
    let focused = '';
    for (let i = 0; i < 8 && focused !== 'join'; i++) {
      await page.keyboard.press('Tab');
      focused = await page.evaluate(() => document.activeElement && document.activeElement.id);
    }
    if (focused !== 'join') throw new Error('Tab never reached the Join button');
    await page.keyboard.press('Enter');
    await until('joined', () => page.evaluate(() => window.raum && window.raum.id !== null));
    // A second person with a long name, so a remote tile's caption is measured too.
    const other = await participant(browser, 'Konstantin Alexandrowitsch Rachmaninow-Tschaikowski', args.url, 'de-DE');
    await join(other);
    await until('the other tile', () => page.evaluate(() => window.raum.tiles.length === 2));
    await page.click('#mic');
    const reached = new Set();
    for (let i = 0; i < 14; i++) {
      await page.keyboard.press('Tab');
      reached.add(await page.evaluate(() => document.activeElement && (document.activeElement.id || document.activeElement.tagName)));
    }
    const measure = () => page.evaluate(() => {
      const buttons = [...document.querySelectorAll('#controls button')].filter((b) => !b.hidden);
      const rows = new Set(buttons.map((b) => Math.round(b.getBoundingClientRect().top)));
      const captions = [...document.querySelectorAll('.tile:not([hidden])')].map((t) => {
        const tr = t.getBoundingClientRect();
        const c = t.querySelector('figcaption').getBoundingClientRect();
        return { inside: c.left >= tr.left && c.right <= tr.right + 0.5 && c.bottom <= tr.bottom + 0.5, heightShare: c.height / tr.height };
      });
      const bar = document.getElementById('controls').getBoundingClientRect();
      const side = document.getElementById('side').getBoundingClientRect();
      return {
        toolbarRows: rows.size, captions, micLabel: document.getElementById('mic').getAttribute('aria-label'),
        overflow: document.documentElement.scrollWidth - window.innerWidth,
        sheetAboveToolbar: side.height === 0 || side.bottom <= bar.top + 0.5,
      };
    });
    const closed = await measure();
    // The chat opens over the stage, by keyboard too; focus goes to its input.
    await page.focus('#chat-toggle');
    await page.keyboard.press('Enter');
    await until('chat open', () => page.evaluate(() => document.activeElement && document.activeElement.id === 'chat-input'));
    const chatOpen = await measure();
    if (args.screenshot) await page.screenshot({ path: args.screenshot });
    const shareHidden = await page.evaluate(() => document.getElementById('share').hidden);
    process.stdout.write(JSON.stringify({ overflow: closed.overflow, reached: [...reached].sort(), shareHidden, closed, chatOpen }) + '\n');
  } finally {
    await browser.close();
  }
}

// What a page sends and receives of video: per outgoing encoding (rid) its frame
// width, and of the (one) remote video its frame width, frames decoded, keyframes
// decoded and packets.
async function videoStats(p) {
  return p.page.evaluate(async () => {
    const out = { sent: {}, recv: null };
    const report = await window.raum.pc.getStats();
    report.forEach((r) => {
      if (r.type === 'outbound-rtp' && r.kind === 'video') {
        out.sent[r.rid || '-'] = { width: r.frameWidth || 0, frames: r.framesEncoded || 0 };
      }
      if (r.type === 'inbound-rtp' && r.kind === 'video' && (r.packetsReceived || 0) > 0) {
        out.recv = { width: r.frameWidth || 0, frames: r.framesDecoded || 0, keyframes: r.keyFramesDecoded || 0, packets: r.packetsReceived };
      }
    });
    return out;
  });
}

// Simulcast: Ada publishes three layers; Bea gets the layer her tile needs, none
// while the tile is off screen, and a keyframe when it comes back. Bea joins first;
// the caller then puts five synthetic participants in (after {"ready": ...}), and
// Ada comes last, so on Bea's narrow window (6 tiles a page) Ada's tile is on the
// second page.
async function simulcast() {
  // What Bea receives of Ada's video (the others' are beside it).
  const fromAda = async (p, id) => p.page.evaluate(async (peer) => {
    const v = document.querySelector(`.tile[data-peer="${peer}"] video`);
    const track = v && v.srcObject && v.srcObject.getVideoTracks()[0];
    let out = null;
    (await window.raum.pc.getStats()).forEach((r) => {
      if (track && r.type === 'inbound-rtp' && r.trackIdentifier === track.id) {
        out = { width: r.frameWidth || 0, frames: r.framesDecoded || 0, keyframes: r.keyFramesDecoded || 0, packets: r.packetsReceived || 0 };
      }
    });
    return out;
  }, id);
  const browser = await launch();
  try {
    const a = await participant(browser, 'Ada', args.url, args.locale);
    const b = await participant(browser, 'Bea', args.url, args.locale);
    await join(b);
    process.stdout.write(JSON.stringify({ ready: 'Bea' }) + '\n');
    await until('Bea sees the synthetic five', () => b.page.evaluate(() => window.raum.tiles.length === 6), 60000);
    await join(a);
    const adaId = await a.page.evaluate(() => window.raum.id);
    await until('Bea sees Ada', () => b.page.evaluate(() => window.raum.tiles.length === 7));
    const out = {};
    // A large screen, Ada pinned: her tile is about 1200 pixels wide, so all of her
    // layers are needed (once her bandwidth estimate allows them).
    await b.page.setViewportSize({ width: 1600, height: 1000 });
    const pin = () => b.page.click(`.tile[data-peer="${adaId}"] .pin`);
    await pin();
    out.pinned = await b.page.evaluate(() => window.raum.pinned);
    out.sent = await until('Ada sends three encodings', async () => {
      const s = await videoStats(a);
      return Object.keys(s.sent).length === 3 && Object.values(s.sent).every((x) => x.frames > 0) ? s.sent : null;
    }, 60000);
    out.largest = (await fromAda(b, adaId)); // recorded, not required: CPU load may scale it
    // Unpinned, the grid of seven on a smaller screen: tiles about 200 wide.
    await pin();
    await b.page.setViewportSize({ width: 1000, height: 700 });
    out.small = await until('Bea: a small layer', async () => {
      const s = await fromAda(b, adaId);
      return s && s.frames > 30 && s.width > 0 && s.width <= 320 ? s : null;
    }, 40000);
    out.smallLayout = await b.page.evaluate(() => window.raum.layout);
    // Pinned again: Ada's tile spans the stage.
    const clicked = Date.now();
    await pin();
    out.large = await until('Bea: at least 640 wide', async () => {
      const s = await fromAda(b, adaId);
      return s && s.width >= 640 ? s : null;
    }, 20000);
    out.upMs = Date.now() - clicked;
    out.largeLayout = await b.page.evaluate(() => window.raum.layout);
    await sleep(1500);
    out.afterUp = (await fromAda(b, adaId));
    // Unpinned in a narrow window: six tiles a page, Ada's on the second.
    await pin();
    await b.page.setViewportSize({ width: 560, height: 800 });
    out.offLayout = await until('Bea: Ada not in the layout', async () => {
      const l = await b.page.evaluate(() => window.raum.layout);
      return l && !l.some((t) => t.id === String(adaId)) ? l : null;
    });
    await sleep(1500);
    out.pausedStart = (await fromAda(b, adaId));
    await sleep(2000);
    out.pausedEnd = (await fromAda(b, adaId));
    // The next page brings it back.
    const turned = Date.now();
    await b.page.click('#page-next');
    out.resumed = await until('Bea: a keyframe decoded again', async () => {
      const s = (await fromAda(b, adaId));
      return s && s.frames > out.pausedEnd.frames && s.keyframes > out.pausedEnd.keyframes ? s : null;
    }, 20000);
    out.resumeMs = Date.now() - turned;
    await sleep(1000);
    out.afterResume = (await fromAda(b, adaId));
    process.stdout.write(JSON.stringify(out) + '\n');
  } finally {
    await browser.close();
  }
}

// What a page of the class receives now: bytes in all (the transport), and per tile
// on screen (the last layout it sent) the decoded frames and width of its video.
async function classFigures(p) {
  return p.page.evaluate(async () => {
    const grid = document.getElementById('grid').getBoundingClientRect();
    const out = {
      bytes: 0, tiles: {}, visible: (window.raum.layout || []).map((t) => t.id),
      // The grid's order and the stage's size, to tell why a tile is not on screen.
      order: window.raum.tiles, stage: [Math.round(grid.width), Math.round(grid.height)],
    };
    const report = await window.raum.pc.getStats();
    const byTrack = {};
    report.forEach((r) => {
      if (r.type === 'transport') out.bytes += r.bytesReceived || 0;
      if (r.type === 'inbound-rtp' && r.kind === 'video') {
        byTrack[r.trackIdentifier] = {
          frames: r.framesDecoded || 0, width: r.frameWidth || 0, keyframes: r.keyFramesDecoded || 0,
          plis: r.pliCount || 0, nacks: r.nackCount || 0, lost: r.packetsLost || 0, packets: r.packetsReceived || 0,
          dropped: r.framesDropped || 0, received: r.framesReceived || 0,
        };
      }
    });
    for (const id of out.visible) {
      const v = document.querySelector(`.tile[data-peer="${id}"] video`);
      const track = v && v.srcObject && v.srcObject.getVideoTracks()[0];
      out.tiles[id] = (track && byTrack[track.id]) || { frames: 0, width: 0 };
    }
    return out;
  });
}

// A class: the caller has put synthetic participants in the meeting; three Chromium
// pupils join on laptop-sized screens, in the grid view (16 tiles a page). Over a
// window: each page's received bitrate, and the frames each tile on screen decoded.
async function klass() {
  const browser = await launch();
  try {
    const ps = [];
    for (const name of ['Pupil A', 'Pupil B', 'Pupil C']) {
      const p = await participant(browser, name, args.url, args.locale);
      await p.page.setViewportSize({ width: 1280, height: 800 });
      ps.push(p);
    }
    for (const p of ps) await join(p);
    // The caller starts the synthetic pupils now, so the window below falls inside
    // their run however long the browsers took to start.
    process.stdout.write(JSON.stringify({ joined: ps.length }) + '\n');
    await until('everyone in every grid', async () => {
      for (const p of ps) {
        if ((await p.page.evaluate(() => window.raum.tiles.length)) < args.expect) return false;
      }
      return true;
    }, 90000);
    // Layers and estimates settle.
    await sleep(args.settleMs);
    const before = await Promise.all(ps.map(classFigures));
    const t0 = Date.now();
    await sleep(args.windowMs);
    const after = await Promise.all(ps.map(classFigures));
    const secs = (Date.now() - t0) / 1000;
    const pairs = await Promise.all(ps.map(selectedPair));
    const out = ps.map((p, i) => ({
      name: p.name,
      tiles: after[i].visible.length,
      // Everyone still there at the window's end (nobody left during it).
      everyone: after[i].order.length,
      receivedKbps: ((after[i].bytes - before[i].bytes) * 8) / 1000 / secs,
      decoded: Object.fromEntries(after[i].visible.map((id) => [id,
        (after[i].tiles[id].frames || 0) - ((before[i].tiles[id] || {}).frames || 0)])),
      widths: Object.fromEntries(after[i].visible.map((id) => [id, after[i].tiles[id].width])),
      pair: pairs[i],
      order: after[i].order,
      stage: after[i].stage,
      detail: args.detail ? after[i].tiles : undefined,
    }));
    process.stdout.write(JSON.stringify({ pages: out, seconds: secs }) + '\n');
  } finally {
    await browser.close();
  }
}

// The selected candidate pair of a page's connection: protocols and types of both ends.
async function selectedPair(p) {
  return p.page.evaluate(async () => {
    const report = await window.raum.pc.getStats();
    let transport;
    report.forEach((r) => { if (r.type === 'transport' && r.selectedCandidatePairId) transport = r; });
    const pair = transport && report.get(transport.selectedCandidatePairId);
    if (!pair) return null;
    const end = (c) => c && {
      protocol: c.protocol, candidateType: c.candidateType, tcpType: c.tcpType || null,
      relayProtocol: c.relayProtocol || null, port: c.port,
    };
    return { state: pair.state, local: end(report.get(pair.localCandidateId)), remote: end(report.get(pair.remoteCandidateId)) };
  });
}

// Two participants, each in a browser of its own: "Outside" on an open network and
// "Inside" behind a firewall the caller made (both browsers are the caller's
// wrappers, which run Chromium in its network namespace). Each must receive the
// other's video and audio; the result names the pair Inside's connection chose.
async function firewalled() {
  const outside = await launch(true, args.outside);
  const inside = await launch(true, args.inside);
  try {
    const o = await participant(outside, 'Outside', args.url);
    const i = await participant(inside, 'Inside', args.url);
    await join(o);
    await join(i);
    const result = { received: {} };
    result.received.Inside = await receiving(i, 1);
    result.received.Outside = await receiving(o, 1);
    result.insidePair = await selectedPair(i);
    process.stdout.write(JSON.stringify(result) + '\n');
    // The caller may look at the call from outside meanwhile (holdMs: keep it up).
    if (args.holdMs) {
      await sleep(args.holdMs);
      result.afterHold = { Inside: await receiving(i, 1), Outside: await receiving(o, 1) };
      process.stdout.write(JSON.stringify(result) + '\n');
    }
  } finally {
    await inside.close();
    await outside.close();
  }
}

// A lesson with a lobby: the teacher (host link) lets Ada (German) in and turns Bob
// away; mutes Ada (her audio stops arriving, and her own unmute is refused), lets
// everyone unmute again; sees and lowers Ada's hand; locks the meeting against Cleo;
// removes Ada, whose reload stays out; ends the meeting. What each page showed is
// returned for the caller to check against the texts.
async function lesson() {
  const browser = await launch();
  try {
    const text = (p, sel) => p.page.evaluate((s) => { const el = document.querySelector(s); return el ? el.textContent : null; }, sel);
    const visible = (p, sel) => p.page.evaluate((s) => { const el = document.querySelector(s); return !!el && !el.closest('[hidden]'); }, sel);
    const audioIn = (p) => stats(p).then((s) => s.audioPackets);
    const out = {};
    const teacher = await participant(browser, 'Teacher', args.hostUrl);
    teacher.page.on('dialog', (d) => d.accept());
    await join(teacher);
    out.role = await teacher.page.evaluate(() => window.raum.role);
    out.hostControls = await visible(teacher, '#host-controls');
    const ada = await participant(browser, 'Ada', args.url, 'de-DE');
    const bob = await participant(browser, 'Bob', args.url, 'en-US');
    const knock = async (p) => {
      await p.page.waitForSelector('#join-form');
      await until(`${p.name}: devices listed`, () =>
        p.page.evaluate(() => !document.getElementById('camera') || document.getElementById('camera').options.length > 0));
      await p.page.fill('#name', p.name);
      await p.page.click('#join');
      await until(`${p.name}: waits`, () => visible(p, '#knock'));
      return { title: await text(p, '#knock-title'), text: await text(p, '#knock-text'), id: await p.page.evaluate(() => window.raum.id) };
    };
    out.adaWaits = await knock(ada);
    out.bobWaits = await knock(bob);
    await until('teacher sees two knocks', () => teacher.page.evaluate(() => window.raum.lobby.length === 2));
    out.knocks = await teacher.page.evaluate(() => [...document.querySelectorAll('#knock-list li span')].map((s) => s.textContent).sort());
    await teacher.page.click('#knock-list button[aria-label="Let in: Ada"]');
    await teacher.page.click('#knock-list button[aria-label="Turn away: Bob"]');
    await until('Ada is in', () => ada.page.evaluate(() => window.raum.id !== null));
    await until('Bob is turned away', () => visible(bob, '#end'));
    out.bobEnd = { title: await text(bob, '#end-title'), text: await text(bob, '#end-text'), rejoin: await visible(bob, '#rejoin') };
    const knocksNow = () => teacher.page.evaluate(() => window.raum.lobby.length);
    out.knocksAfter = await settles(knocksNow, 0);
    await receiving(teacher, 1);

    // The teacher mutes Ada: her audio stops arriving.
    await teacher.page.click('#people button.mute-one');
    await until('Ada is told', () => ada.page.evaluate(() => document.getElementById('mic').getAttribute('aria-pressed') === 'true'));
    await sleep(1000);
    const m0 = await audioIn(teacher);
    await sleep(2000);
    const m1 = await audioIn(teacher);
    // Ada tries to unmute herself: refused (participantsMayUnmute: false).
    await ada.page.click('#mic');
    await until('Ada is refused', async () => (await text(ada, '#status')) !== '');
    out.adaStatus = await text(ada, '#status');
    await sleep(2000);
    const m2 = await audioIn(teacher);
    out.mutedAudio = { whileMuted: m1 - m0, afterOwnUnmute: m2 - m1, adaMicPressed: await ada.page.evaluate(() => document.getElementById('mic').getAttribute('aria-pressed')) };
    // The teacher allows Ada to unmute; she does; her audio comes again.
    await teacher.page.click('#people button.allow-one');
    await sleep(500);
    await ada.page.click('#mic');
    await sleep(1500);
    const u0 = await audioIn(teacher);
    await sleep(2000);
    out.mutedAudio.afterLift = (await audioIn(teacher)) - u0;

    // Ada raises her hand; the teacher sees it and lowers it.
    await ada.page.click('#hand');
    await until('the teacher sees the hand', () => teacher.page.evaluate(() => window.raum.hands.length === 1));
    out.handSeen = await text(teacher, '#people li[data-peer] span');
    // Her own page hears of it by the same broadcast, perhaps a moment later.
    await until('Ada hears of her hand', () => ada.page.evaluate(() => window.raum.hand), 5000).catch(() => null);
    out.adaHandButton = await text(ada, '#hand');
    await teacher.page.click('#people button.lower-hand');
    await until('the hand is lowered', () => ada.page.evaluate(() => !window.raum.hand));
    out.handsAfter = await settles(() => teacher.page.evaluate(() => window.raum.hands.length), 0);

    // Locked: Cleo cannot even knock.
    await teacher.page.click('#lock');
    await until('Ada sees the lock', () => ada.page.evaluate(() => window.raum.locked));
    const cleo = await participant(browser, 'Cleo', args.url, 'en-US');
    await cleo.page.fill('#name', 'Cleo');
    await cleo.page.click('#join');
    await until('Cleo is refused', () => visible(cleo, '#end'));
    out.cleoEnd = await text(cleo, '#end-title');
    await teacher.page.click('#lock');

    // Removed: Ada's reload of the same tab stays out.
    await teacher.page.click('#people button.remove');
    await until('Ada is removed', () => visible(ada, '#end'));
    out.adaRemoved = { title: await text(ada, '#end-title'), rejoin: await visible(ada, '#rejoin') };
    await ada.page.reload();
    await ada.page.fill('#name', 'Ada');
    await ada.page.click('#join');
    await until('Ada stays out', () => visible(ada, '#end'));
    out.adaAgain = await text(ada, '#end-title');
    out.teacherKnocksAfterRemoval = await knocksNow();

    // The teacher ends the meeting for all.
    await teacher.page.click('#end-all');
    await until('the meeting ends', () => visible(teacher, '#end'));
    out.teacherEnd = await text(teacher, '#end-title');
    out.teacherEndRejoin = await visible(teacher, '#rejoin');
    process.stdout.write(JSON.stringify(out) + '\n');
  } finally {
    await browser.close();
  }
}

// Screen sharing in a meeting where only hosts may share: Ada (a participant) has
// no button, and when her page shares anyway (as a modified client would) the SFU
// refuses it; the teacher shares, Ada decodes it large; a co-teacher cannot share
// at the same time; the teacher stops in the browser's own bar (the track ends) and
// the screen goes from Ada's page; the teacher shares again and it comes again.
async function shareScenario() {
  const browser = await launch();
  try {
    const out = {};
    const teacher = await participant(browser, 'Teacher', args.hostUrl);
    const ada = await participant(browser, 'Ada', args.url);
    const co = await participant(browser, 'Co', args.hostUrl);
    for (const p of [teacher, ada, co]) await join(p);
    await receiving(ada, 2);
    const screenTile = (p) => p.page.evaluate(async () => {
      const tile = document.querySelector('.tile.screen');
      if (!tile) return null;
      const v = tile.querySelector('video');
      const track = v.srcObject && v.srcObject.getVideoTracks()[0];
      let frames = 0;
      if (track) {
        const report = await window.raum.pc.getStats();
        report.forEach((r) => { if (r.type === 'inbound-rtp' && r.trackIdentifier === track.id) frames = r.framesDecoded || 0; });
      }
      const grid = document.getElementById('grid').getBoundingClientRect();
      const box = tile.getBoundingClientRect();
      return { peer: tile.dataset.peer, caption: tile.querySelector('figcaption').textContent, frames, width: v.videoWidth, share: box.width / grid.width };
    });
    const decoding = async (p, what) => {
      const first = await until(`${p.name}: ${what}`, async () => { const s = await screenTile(p); return s && s.frames > 0 ? s : null; });
      await sleep(3000);
      const second = await screenTile(p);
      return { ...second, rising: second.frames - first.frames };
    };
    out.adaButtonHidden = await ada.page.evaluate(() => document.getElementById('share').hidden);
    out.teacherButtonHidden = await teacher.page.evaluate(() => document.getElementById('share').hidden);
    // Ada's page shares anyway: refused by the SFU.
    await ada.page.evaluate(() => window.raum.share());
    await until('Ada is refused', () => ada.page.evaluate(() => document.getElementById('status').textContent !== ''));
    out.adaStatus = await ada.page.evaluate(() => document.getElementById('status').textContent);
    await sleep(2000);
    out.adaStillSharing = await ada.page.evaluate(() => window.raum.sharing);
    out.teacherSeesScreenOfAda = await screenTile(teacher);
    // The teacher shares: Ada decodes it, large.
    await teacher.page.click('#share');
    out.adaSees = await decoding(ada, 'the teacher\'s screen');
    out.teacherId = await teacher.page.evaluate(() => window.raum.id);
    out.teacherButton = await teacher.page.evaluate(() => document.getElementById('share').textContent);
    // The co-teacher cannot share at the same time.
    await until('the co-teacher knows', () => co.page.evaluate(() => window.raum.sharer !== null));
    out.coButtonDisabled = await co.page.evaluate(() => document.getElementById('share').disabled);
    await co.page.evaluate(() => window.raum.share());
    await until('the co-teacher is refused', () => co.page.evaluate(() => document.getElementById('status').textContent !== ''));
    out.coStatus = await co.page.evaluate(() => document.getElementById('status').textContent);
    out.coSharing = await co.page.evaluate(() => window.raum.sharing);
    // Stopped in the browser's own bar: the capture track ends.
    await teacher.page.evaluate(() => {
      const sender = window.raum.pc.getSenders().find((s) => s.track && s.track.label.startsWith('screen'));
      sender.track.stop();
      sender.track.dispatchEvent(new Event('ended'));
    });
    await until('the screen goes from Ada\'s page', async () => (await screenTile(ada)) === null);
    out.adaSharerAfterStop = await ada.page.evaluate(() => window.raum.sharer);
    // Shared again: it comes again.
    await teacher.page.click('#share');
    out.adaSeesAgain = await decoding(ada, 'the teacher\'s screen again');
    out.adaReceivesAll = await receiving(teacher, 2);
    process.stdout.write(JSON.stringify(out) + '\n');
  } finally {
    await browser.close();
  }
}

// What a first call found (issue: "the bugs a first call finds"): a latecomer sees
// the camera-off tile (with initials) of someone whose camera was off before it
// came; the footer's privacy link opens beside the call, which goes on; "Join again"
// keeps the name; no request fails or leaves the page's origin (the icon included).
async function firstCall() {
  const browser = await launch();
  try {
    const out = { failed: [], foreign: [] };
    const origin = new URL(args.url).origin;
    const watch = (p) => {
      p.page.on('response', (r) => { if (r.status() >= 400) out.failed.push(`${r.status()} ${new URL(r.url()).pathname}`); });
      p.page.on('request', (r) => { if (!r.url().startsWith(origin)) out.foreign.push(r.url()); });
    };
    const ada = await participant(browser, 'Ada Lovelace', args.url);
    watch(ada);
    await join(ada);
    await ada.page.click('#cam');
    const bob = await participant(browser, 'Bob', args.url);
    watch(bob);
    await join(bob);
    const adaId = await ada.page.evaluate(() => window.raum.id);
    const tile = await until('Bob shows Ada', () => bob.page.evaluate((id) => {
      const t = document.querySelector(`.tile[data-peer="${id}"]`);
      return t && { cameraOff: t.classList.contains('camera-off'), initials: t.querySelector('.initials').textContent,
        initialsShown: getComputedStyle(t.querySelector('.initials')).display !== 'none' };
    }, adaId));
    out.bobSeesAda = tile;
    // Ada mutes: a crossed-out microphone on her tile, for Bob and on her own.
    await ada.page.click('#mic');
    // Muted, she does not ring on Bob's page (the ring comes from what arrives; what
    // was in flight and the ring's hold have gone after 2 s).
    await sleep(2000);
    let rang = false;
    for (let i = 0; i < 20; i++) {
      rang = rang || await bob.page.evaluate((id) => window.raum.talking.includes(id), adaId);
      await sleep(100);
    }
    out.mutedRang = rang;
    out.mutedMarks = {
      bob: await until('Bob sees Ada muted', () => bob.page.evaluate((id) => !!document.querySelector(`.tile[data-peer="${id}"] figcaption .muted svg`), adaId)),
      own: await ada.page.evaluate(() => !!document.querySelector('.tile[data-peer="self"] figcaption .muted svg')),
      emoji: await bob.page.evaluate(() => /\p{Extended_Pictographic}/u.test(document.getElementById('grid').textContent)),
      micButtonIcon: await ada.page.evaluate(() => !!document.querySelector('#mic svg.icon')),
    };
    // The call names the meeting and counts who is here; chat lines carry the time.
    out.title = await bob.page.textContent('#call-title');
    out.peopleHead = await bob.page.textContent('#people-head');
    await bob.page.fill('#chat-input', 'Hallo');
    await bob.page.press('#chat-input', 'Enter');
    out.chatTime = await until('Ada gets the chat', () => ada.page.evaluate(() => {
      const t = document.querySelector('#messages li time');
      return t && t.textContent;
    }));
    // The invite link is the participants' link, also from the host's page.
    const copied = async (p) => {
      await p.context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin });
      await p.page.click('#invite');
      return p.page.evaluate(() => navigator.clipboard.readText());
    };
    out.invite = await copied(bob);
    const host = await participant(browser, 'Host', args.hostUrl);
    watch(host);
    await join(host);
    out.hostInvite = await copied(host);
    out.adaSelf = await ada.page.evaluate(() => {
      const t = document.querySelector('.tile[data-peer="self"]');
      return { cameraOff: t.classList.contains('camera-off'), initials: t.querySelector('.initials').textContent };
    });
    // The privacy notice opens beside the call.
    const [notice] = await Promise.all([
      bob.context.waitForEvent('page'),
      bob.page.click('footer a'),
    ]);
    await notice.waitForLoadState();
    out.noticePath = new URL(notice.url()).pathname;
    await notice.close();
    await sleep(500);
    out.bobStillIn = await bob.page.evaluate(() => window.raum.id !== null && !document.getElementById('call').hidden);
    // Leave and join again: the name is still there.
    await bob.page.click('#leave');
    await until('Bob left', () => bob.page.isVisible('#end'));
    await bob.page.click('#rejoin');
    await bob.page.waitForSelector('#join-form');
    out.nameAfterRejoin = await bob.page.inputValue('#name');
    out.failed = [...new Set(out.failed)];
    process.stdout.write(JSON.stringify(out) + '\n');
  } finally {
    await browser.close();
  }
}

// Text contrast (WCAG AA: 4.5:1, 3:1 for large text) of everything visible with
// text, from the computed styles, in the light and the dark scheme, on a desktop and
// a phone, in the lobby and in the call (German: the longest labels); and no
// horizontal scrolling.
async function contrast() {
  const browser = await launch();
  try {
    const out = [];
    for (const colorScheme of ['light', 'dark']) {
      for (const [device, viewport] of [['desktop', { width: 1280, height: 800 }], ['phone', { width: 390, height: 844 }]]) {
        const context = await browser.newContext({ locale: 'de-DE', colorScheme, viewport, isMobile: device === 'phone' });
        const page = await context.newPage();
        await page.goto(args.url);
        const p = { name: 'Maximilian Mustermann-Schmidt', page, context };
        const check = (where) => page.evaluate((where) => {
          const parse = (c) => { const m = c.match(/rgba?\(([^)]+)\)/); if (!m) return null; const v = m[1].split(/[ ,/]+/).filter(Boolean).map(Number); return { r: v[0], g: v[1], b: v[2], a: v.length > 3 ? v[3] : 1 }; };
          const lum = ({ r, g, b }) => { const f = (x) => { x /= 255; return x <= 0.03928 ? x / 12.92 : ((x + 0.055) / 1.055) ** 2.4; }; return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b); };
          const over = (top, under) => ({ r: top.r * top.a + under.r * (1 - top.a), g: top.g * top.a + under.g * (1 - top.a), b: top.b * top.a + under.b * (1 - top.a), a: 1 });
          const background = (el) => {
            const layers = [];
            for (let e = el; e; e = e.parentElement) {
              const c = parse(getComputedStyle(e).backgroundColor);
              if (c && c.a > 0) { layers.push(c); if (c.a >= 1) break; }
            }
            let c = { r: 255, g: 255, b: 255, a: 1 };
            if (!layers.length || layers[layers.length - 1].a < 1) c = parse(getComputedStyle(document.documentElement).backgroundColor) || c;
            for (const l of layers.reverse()) c = over(l, c);
            return c;
          };
          const bad = [];
          let checked = 0;
          for (const el of document.querySelectorAll('body *')) {
            if (!el.offsetParent && getComputedStyle(el).position !== 'fixed') continue;
            if (el.closest('[hidden], [aria-hidden="true"], video')) continue;
            const own = [...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
            const field = el.matches('input, select') && (el.value || el.placeholder);
            if (!own && !field) continue;
            if (el.disabled) continue; // WCAG exempts inactive controls
            const st = getComputedStyle(el);
            if (st.visibility === 'hidden' || Number(st.opacity) === 0) continue;
            const fg = over(parse(st.color), background(el));
            const bg = background(el);
            const [a, b] = [lum(fg), lum(bg)].sort((x, y) => y - x);
            const ratio = (a + 0.05) / (b + 0.05);
            const size = parseFloat(st.fontSize);
            const large = size >= 24 || (size >= 18.66 && Number(st.fontWeight) >= 700);
            checked += 1;
            if (ratio < (large ? 3 : 4.5)) bad.push(`${where} ${el.tagName.toLowerCase()}#${el.id || ''}.${el.className || ''} "${(el.textContent || el.value || '').trim().slice(0, 30)}" ${ratio.toFixed(2)}`);
          }
          return { bad, checked, overflow: document.documentElement.scrollWidth - window.innerWidth };
        }, where);
        await page.waitForSelector('#join-form');
        await page.fill('#name', p.name);
        const lobby = await check(`${colorScheme}/${device}/lobby`);
        await page.click('#join');
        await until('joined', () => page.evaluate(() => window.raum && window.raum.id !== null));
        // Pressed buttons too: the microphone muted, the hand raised.
        await page.click('#mic');
        await page.click('#hand');
        await until('hand raised', () => page.evaluate(() => window.raum.hand));
        await openPanel(p, 'chat');
        await page.fill('#chat-input', 'Guten Morgen');
        await page.press('#chat-input', 'Enter');
        await sleep(300);
        const inCall = await check(`${colorScheme}/${device}/call`);
        if (args.screenshots) await page.screenshot({ path: `${args.screenshots}/contrast-${colorScheme}-${device}.png`, fullPage: true });
        out.push({ where: `${colorScheme}/${device}`, lobby, inCall });
        await context.close();
      }
    }
    process.stdout.write(JSON.stringify(out) + '\n');
  } finally {
    await browser.close();
  }
}


// The stage: one page (1280x800 unless told) in a meeting where the caller has put
// synthetic participants. Once `expect` tiles are there, the tiles' rectangles: how
// much of the stage (the area beside the side panel, between header and toolbar)
// they cover, each 16:9, none overlapping another or leaving the stage; in the grid
// view with the side panel open and with it closed, and the speaker view's large tile.
async function stageScenario() {
  const browser = await launch();
  try {
    const viewport = args.viewport || { width: 1280, height: 800 };
    const context = await browser.newContext({ locale: args.locale || 'en-US', viewport, isMobile: viewport.width < 500 });
    const page = await context.newPage();
    page.on('pageerror', (e) => process.stderr.write(`[stage] page error: ${e}\n`));
    await page.goto(args.url);
    const p = { name: 'Ada Lovelace', page, context };
    await join(p);
    await until(`${args.expect} tiles`, () => page.evaluate((n) => window.raum.tiles.length === n, args.expect), 60000);
    await sleep(1000);
    const geometry = () => page.evaluate(() => {
      const st = document.getElementById('stage').getBoundingClientRect();
      const rs = [...document.querySelectorAll('.tile:not([hidden])')].map((t) => ({ r: t.getBoundingClientRect(), main: t.classList.contains('main') }));
      const eps = 1;
      let overlaps = 0;
      let outside = 0;
      let worstAspect = 0;
      rs.forEach(({ r: a }, i) => {
        worstAspect = Math.max(worstAspect, Math.abs(a.width / a.height - 16 / 9));
        if (a.left < st.left - eps || a.top < st.top - eps || a.right > st.right + eps || a.bottom > st.bottom + eps) outside += 1;
        rs.slice(i + 1).forEach(({ r: b }) => {
          if (a.left < b.right - eps && b.left < a.right - eps && a.top < b.bottom - eps && b.top < a.bottom - eps) overlaps += 1;
        });
      });
      const area = (r) => r.width * r.height;
      const covered = rs.reduce((sum, t) => sum + area(t.r), 0);
      const main = rs.find((t) => t.main);
      return {
        tiles: rs.length, stage: [Math.round(st.width), Math.round(st.height)],
        coverage: covered / area(st), ofWindow: covered / (window.innerWidth * window.innerHeight),
        mainShare: main ? area(main.r) / area(st) : null,
        // How far the large tile reaches across the stage (16:9 on a tall phone
        // reaches across, not down).
        mainSpan: main ? Math.max(main.r.width / st.width, main.r.height / st.height) : null,
        overlaps, outside, worstAspect,
        overflow: document.documentElement.scrollWidth - window.innerWidth,
      };
    });
    const shot = async (what) => {
      if (args.screenshots) await page.screenshot({ path: `${args.screenshots}/stage-${args.expect}-${viewport.width}-${what}.png` });
    };
    const out = {};
    out.grid = await geometry();
    await shot('grid');
    // With the side panel closed (phones start so), the stage takes its room.
    for (const name of ['people', 'chat']) {
      if (await page.evaluate((n) => !document.getElementById(`${n}-panel`).hidden, name)) await page.click(`#${name}-toggle`);
    }
    await sleep(500);
    out.closed = await geometry();
    await shot('closed');
    await page.click('#view');
    await sleep(500);
    out.speaker = await geometry();
    await shot('speaker');
    process.stdout.write(JSON.stringify(out) + '\n');
  } finally {
    await browser.close();
  }
}

// Devices and the rest of the toolbar. Ada's lobby shows her microphone's level; Bob
// joins with microphone and camera off (his lobby toggles) and Ada sees it; he
// switches both on; Ada switches camera, microphone and speaker mid-call (fake
// devices) and the call goes on without a new offer; full screen on and off; the
// chat's unread badge; a connection quality on every tile.
async function devicesScenario() {
  // Three fake cameras: Chromium's second (fake_device_1) plays in a video element
  // but feeds no encoder (as a depth camera would; checked), so Ada switches to the
  // third.
  const browser = await launch(true, CHROMIUM, 3);
  try {
    const out = {};
    const ada = await participant(browser, 'Ada', args.url);
    await ada.page.waitForSelector('#join-form');
    // The fake microphone beeps: the level rises above silence within a few seconds.
    let level = 0;
    const end = Date.now() + 8000;
    while (Date.now() < end && level < 0.05) {
      level = Math.max(level, await ada.page.evaluate(() => document.getElementById('mic-level').value));
      await sleep(50);
    }
    out.lobbyLevel = level;
    await join(ada);
    const adaId = await ada.page.evaluate(() => window.raum.id);
    const bob = await participant(browser, 'Bob', args.url);
    await bob.page.waitForSelector('#join-form');
    await bob.page.check('#join-muted');
    await bob.page.check('#join-camera-off');
    await join(bob);
    const bobId = await bob.page.evaluate(() => window.raum.id);
    out.bobButtons = await bob.page.evaluate(() => ({
      mic: document.getElementById('mic').getAttribute('aria-pressed'), cam: document.getElementById('cam').getAttribute('aria-pressed'),
    }));
    out.adaSeesBob = await until('Ada sees Bob muted, camera off', () => ada.page.evaluate((id) => {
      const t = document.querySelector(`.tile[data-peer="${id}"]`);
      return t && t.classList.contains('camera-off') && t.querySelector('figcaption .muted') ? { cameraOff: true, muted: true } : null;
    }, bobId));
    await bob.page.click('#mic');
    await bob.page.click('#cam');
    out.adaReceivesBob = await receiving(ada, 1);
    await receiving(bob, 1);
    const bobsTrackOfAda = () => bob.page.evaluate((id) => {
      const v = document.querySelector(`.tile[data-peer="${id}"] video`);
      return v && v.srcObject ? v.srcObject.getTracks().map((t) => t.id).sort().join(',') : null;
    }, adaId);
    const tracksBefore = await bobsTrackOfAda();

    // Ada's devices dialog: the second camera, microphone and speaker.
    await ada.page.click('#devices-open');
    await until('the dialog opens', () => ada.page.evaluate(() => document.getElementById('devices').open));
    const options = (sel) => ada.page.evaluate((s) => [...document.querySelectorAll(`${s} option`)].map((o) => ({ value: o.value, label: o.textContent, selected: o.selected })), sel);
    out.choices = { cameras: await options('#call-camera'), microphones: await options('#call-microphone'), speakers: await options('#call-speaker') };
    out.speakerShown = await ada.page.evaluate(() => !document.getElementById('call-speaker').hidden);
    const pick = (list, label) => { const o = list.find((x) => x.label === label); if (!o) throw new Error(`no ${label}`); return o.value; };
    await ada.page.selectOption('#call-camera', pick(out.choices.cameras, 'fake_device_2'));
    await ada.page.selectOption('#call-microphone', pick(out.choices.microphones, 'Fake Audio Input 1'));
    const speaker = pick(out.choices.speakers, 'Fake Audio Output 1');
    await ada.page.selectOption('#call-speaker', speaker);
    const sending = () => ada.page.evaluate(() => window.raum.pc.getSenders().filter((s) => s.track).map((s) => s.track.label).sort());
    out.adaSends = await until('the new devices go out', async () => {
      const labels = await sending();
      return labels.includes('fake_device_2') && labels.includes('Fake Audio Input 1') ? labels : null;
    });
    await ada.page.click('#devices-close');
    out.dialogClosed = await ada.page.evaluate(() => !document.getElementById('devices').open);
    out.adaSameSession = (await ada.page.evaluate(() => window.raum.id)) === adaId;
    out.sinks = await until('the speaker is set', () => ada.page.evaluate((want) => {
      const sinks = [...document.querySelectorAll('.tile:not([data-peer="self"]) video')].map((v) => v.sinkId);
      return sinks.length && sinks.every((s) => s === want) ? sinks.length : null;
    }, speaker));
    // Bob goes on seeing and hearing Ada, on the same tracks (no new offer).
    out.bobReceivesAda = await receiving(bob, 1);
    out.bobSameTracks = (await bobsTrackOfAda()) === tracksBefore;

    // Full screen, and back.
    await ada.page.click('#fullscreen');
    // The button follows the page's fullscreenchange event, a moment after.
    const fsState = () => ada.page.evaluate(() => ({
      on: !!document.fullscreenElement, pressed: document.getElementById('fullscreen').getAttribute('aria-pressed'),
      label: document.getElementById('fullscreen').getAttribute('aria-label'),
    }));
    out.fullscreen = await until('full screen', async () => { const f = await fsState(); return f.on && f.pressed === 'true' ? f : null; }, 5000).catch(fsState);
    await ada.page.click('#fullscreen');
    out.windowed = await until('windowed', async () => { const f = await fsState(); return !f.on && f.pressed === 'false' ? f : null; }, 5000).catch(fsState);

    // The chat closed, two lines from Bob: a badge says 2; opened, it goes.
    await ada.page.click('#chat-toggle');
    for (const text of ['eins', 'zwei']) {
      await bob.page.fill('#chat-input', text);
      await bob.page.press('#chat-input', 'Enter');
    }
    out.unread = await until('two unread', () => ada.page.evaluate(() => {
      const b = document.querySelector('#chat-toggle .badge');
      return b && b.textContent === '2' ? { badge: b.textContent, label: document.getElementById('chat-toggle').getAttribute('aria-label') } : null;
    }));
    await ada.page.click('#chat-toggle');
    out.afterOpening = await ada.page.evaluate(() => ({
      badge: !!document.querySelector('#chat-toggle .badge'), unread: window.raum.unread,
      lines: [...document.querySelectorAll('#messages li span')].map((s) => s.textContent),
    }));

    // Every tile says how its connection is (loopback: good, or fair where the
    // machine's load costs frames).
    out.quality = await until('quality on every tile', () => ada.page.evaluate(() => {
      const q = [...document.querySelectorAll('.tile')].map((t) => ({ peer: t.dataset.peer, level: t.dataset.quality || null, label: t.querySelector('.quality').getAttribute('aria-label') }));
      return q.every((x) => x.level) ? q : null;
    }), 10000);
    out.banners = await ada.page.evaluate(() => window.raum.banners);
    process.stdout.write(JSON.stringify(out) + '\n');
  } finally {
    await browser.close();
  }
}

// A weak downlink: "Inside" (whose namespace's link loses UDP towards it), "Outside"
// and a synthetic participant the caller runs. Inside's banner says its connection is
// weak and both others' tiles are poor on its page; Outside's page shows Inside's
// tile (Inside's uplink is clean) and puts up no banner.
async function weak() {
  const outside = await launch(true, args.outside);
  const inside = await launch(true, args.inside);
  try {
    const o = await participant(outside, 'Outside', args.url);
    const i = await participant(inside, 'Inside', args.url);
    await join(o);
    await join(i);
    await until('Inside hears both', () => i.page.evaluate(() => window.raum.tiles.length === 3));
    const insideId = await i.page.evaluate(() => window.raum.id);
    const out = {};
    // What each page measures, for a failure to say.
    const diag = (p) => p.page.evaluate(async () => {
      const d = { tiles: [...document.querySelectorAll('.tile')].map((t) => [t.dataset.peer, t.querySelector('.quality').getAttribute('aria-label')]), stats: [] };
      (await window.raum.pc.getStats()).forEach((r) => {
        if (r.type === 'remote-inbound-rtp') d.stats.push([r.kind, r.fractionLost, r.packetsLost, r.roundTripTime]);
        if (r.type === 'inbound-rtp') d.stats.push(['in', r.kind, r.packetsLost, r.packetsReceived, r.nackCount]);
      });
      return d;
    });
    const explain = async (e) => { throw new Error(`${e.message}: inside ${JSON.stringify(await diag(i))} outside ${JSON.stringify(await diag(o))}`); };
    out.insideBanner = await until('Inside is told', () => i.page.evaluate(() => {
      const b = document.getElementById('banner');
      return b.hidden ? null : b.textContent;
    }), 60000).catch(explain);
    out.insideSees = await until('Inside sees both others poor', () => i.page.evaluate(() => {
      const q = [...document.querySelectorAll('.tile:not([data-peer="self"])')].map((t) => t.querySelector('.quality').getAttribute('aria-label') || '');
      return q.length === 2 && q.every((l) => l.startsWith('Connection poor')) ? q : null;
    }), 30000).catch(() => i.page.evaluate(() => [...document.querySelectorAll('.tile:not([data-peer="self"]) .quality')].map((e) => e.getAttribute('aria-label'))));
    // Inside's id now (a join that lost its media path under this loss joins again,
    // as someone new).
    out.outsideSeesInside = await until('Outside rates Inside', async () => o.page.evaluate((id) => {
      const t = document.querySelector(`.tile[data-peer="${id}"]`);
      return t && t.dataset.quality ? t.querySelector('.quality').getAttribute('aria-label') : null;
    }, await i.page.evaluate(() => window.raum.id)), 30000).catch(explain);
    out.outsideBanners = await o.page.evaluate(() => window.raum.banners);
    out.insideBanners = await i.page.evaluate(() => window.raum.banners);
    out.insideRejoined = (await i.page.evaluate(() => window.raum.id)) !== insideId;
    process.stdout.write(JSON.stringify(out) + '\n');
  } finally {
    await inside.close();
    await outside.close();
  }
}

const scenarios = { contrast, call, full, waiting, denied, phone, simulcast, class: klass, firewalled, lesson, share: shareScenario, firstcall: firstCall,
  stage: stageScenario, devices: devicesScenario, weak };
scenarios[args.scenario]().then(
  () => process.exit(0),
  (e) => { process.stderr.write(`${e.stack || e}\n`); process.exit(1); },
);
