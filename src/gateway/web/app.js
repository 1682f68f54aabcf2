// raum web client: the lobby (name, devices, preview), the call (grid or speaker view,
// pages of tiles, mute, camera, chat, people, hands, and for hosts the lesson controls),
// the waiting room (a host lets you in) and the waiting page (before the start). The camera goes
// out as three simulcast layers; the client tells the SFU which videos it shows and
// how large (a `layout`), so each comes in the layer the tile needs and video off
// screen is not sent at all. Plain JavaScript, no build step; the server puts
// the texts of the participant's language into the page (#config). The signaling
// protocol is docs/signaling.md.
'use strict';

(() => {
  const $ = (id) => document.getElementById(id);
  const page = document.body.dataset.page;

  if (page === 'waiting') return waiting();
  if (page !== 'join') return;

  const config = JSON.parse($('config').textContent);
  const S = config.strings;
  const M = config.meeting;
  const token = location.pathname.split('/').filter(Boolean).pop();
  const wsUrl = (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host +
    location.pathname.replace(/\/+$/, '') + '/ws';

  // What this participant sends.
  let local = null; // MediaStream for preview and sending
  let myName = '';
  let audioMuted = false;
  let videoMuted = false;

  // The connection; replaced on every (re)join.
  let ws = null;
  let pc = null;
  let myId = null;
  let leaving = false; // we closed on purpose, or the server said why
  let attempt = 0; // reconnect attempts since the last good join
  const peers = new Map(); // id -> {name, audio, video}
  const tiles = new Map(); // id -> tile element
  let speakerId = null; // the active speaker, as the SFU says
  let view = 'grid'; // or 'speaker'
  let pinned = null; // the tile someone chose to see large, whoever talks
  let pageNo = 0;
  // Tiles per page in the grid view: 16 where there is room, 6 on a phone.
  const pageSize = () => ($('stage').clientWidth < 600 ? 6 : 16);
  const GAP = 8; // px between tiles
  const ASPECT = 16 / 9;
  let lastLayout = ''; // what the SFU was told last
  let videoSender = null;
  let role = 'participant'; // or 'host': what the SFU made of our link
  let myHand = false;
  let locked = false;
  const knocks = new Map(); // hosts: who waits in the lobby, id -> name
  // Screen sharing: our transceiver for it (kept for the next share), the track we
  // share, and who shares now.
  let screenTx = null;
  let sharing = null;
  let sharer = null;
  // Our own offers (a screen share came or went): one at a time, and again after an
  // offer of the SFU's crossed ours.
  let offering = false;
  let reoffer = false;
  // This tab's seat (from `welcome`): a tab a host removed stays out. Kept for the
  // tab's session only, never sent anywhere but this meeting's SFU.
  const seatKey = 'raum-seat:' + location.pathname;
  const store = (k, v) => { try { if (v === undefined) return sessionStorage.getItem(k); sessionStorage.setItem(k, v); } catch { /* storage off */ } return null; };

  // The simulcast ladder, lowest first (docs/signaling.md): 180p, 360p, 720p.
  const ENCODINGS = [
    { rid: 'q', scaleResolutionDownBy: 4, maxBitrate: 150000 },
    { rid: 'h', scaleResolutionDownBy: 2, maxBitrate: 500000 },
    { rid: 'f', scaleResolutionDownBy: 1, maxBitrate: 1500000 },
  ];

  // ---- icons ---------------------------------------------------------------

  // Inline SVG (no icon font, no request beyond the page): stroked in the text's
  // colour, so they follow the colour scheme and a pressed button's inversion.
  const SLASH = '<path d="M4 4l16 16"/>';
  const ICONS = {
    mic: '<path d="M12 3a3 3 0 0 0-3 3v6a3 3 0 0 0 6 0V6a3 3 0 0 0-3-3z"/><path d="M19 11a7 7 0 0 1-14 0M12 18v3"/>',
    cam: '<rect x="3" y="7" width="12" height="10" rx="2"/><path d="M15 11l6-3v8l-6-3z"/>',
    hand: '<path d="M7 11V6a1.5 1.5 0 0 1 3 0v4M10 10V4.5a1.5 1.5 0 0 1 3 0V10M13 10V5.5a1.5 1.5 0 0 1 3 0V11M16 11V8.5a1.5 1.5 0 0 1 3 0V14a7 7 0 0 1-7 7h-1a6 6 0 0 1-5-2.7L4 15.5a1.5 1.5 0 0 1 2.4-1.8L7 14.5"/>',
    screen: '<rect x="3" y="4" width="18" height="12" rx="2"/><path d="M8 20h8M12 16v4"/>',
    grid: '<rect x="4" y="4" width="7" height="7" rx="1"/><rect x="13" y="4" width="7" height="7" rx="1"/><rect x="4" y="13" width="7" height="7" rx="1"/><rect x="13" y="13" width="7" height="7" rx="1"/>',
    speaker: '<rect x="3" y="4" width="18" height="11" rx="1"/><path d="M5 19h3M10.5 19h3M16 19h3"/>',
    leave: '<path d="M10 17l-5-5 5-5M5 12h11M14 4h4a2 2 0 0 1 2 2v12a2 2 0 0 1-2 2h-4"/>',
    link: '<path d="M10 14a4 4 0 0 0 5.7 0l3-3a4 4 0 0 0-5.7-5.7l-1 1M14 10a4 4 0 0 0-5.7 0l-3 3a4 4 0 0 0 5.7 5.7l1-1"/>',
    people: '<circle cx="9" cy="8" r="3.5"/><path d="M2.5 20a6.5 6.5 0 0 1 13 0M16 4.5a3.5 3.5 0 0 1 0 7M18 14a6 6 0 0 1 3.5 6"/>',
    chat: '<path d="M4 5h16v11H9l-5 4z"/>',
    settings: '<circle cx="12" cy="12" r="3"/><path d="M12 2.5v3M12 18.5v3M2.5 12h3M18.5 12h3M5.3 5.3l2.1 2.1M16.6 16.6l2.1 2.1M5.3 18.7l2.1-2.1M16.6 7.4l2.1-2.1"/>',
    expand: '<path d="M4 9V4h5M20 9V4h-5M4 15v5h5M20 15v5h-5"/>',
    shrink: '<path d="M9 4v5H4M15 4v5h5M9 20v-5H4M15 20v-5h5"/>',
  };
  ICONS['mic-off'] = ICONS.mic + SLASH;
  ICONS['cam-off'] = ICONS.cam + SLASH;

  function icon(name) {
    return `<svg class="icon" viewBox="0 0 24 24" width="20" height="20" fill="none" stroke="currentColor" stroke-width="2" stroke-linecap="round" stroke-linejoin="round" aria-hidden="true" focusable="false">${ICONS[name]}</svg>`;
  }

  // A button's icon and text (the text may be hidden on small screens; it stays the
  // button's accessible name).
  function setButton(el, name, text) {
    if (!el) return;
    el.innerHTML = icon(name) + '<span class="label"></span>';
    el.querySelector('.label').textContent = text;
    el.setAttribute('aria-label', text);
  }

  // ---- lobby ---------------------------------------------------------------

  const lobbyMsg = (text) => { $('lobby-msg').textContent = text || ''; };

  function constraints() {
    const pick = (id, on, extra) => {
      const el = $(id);
      if (!on || !el) return false;
      if (el.value === 'none') return false;
      return Object.assign(el.value ? { deviceId: { exact: el.value } } : {}, extra);
    };
    // 720p if the camera has it (the top simulcast layer); what it has otherwise.
    return {
      audio: pick('microphone', M.audio, {}),
      video: pick('camera', M.video, { width: { ideal: 1280 }, height: { ideal: 720 } }),
    };
  }

  async function preview() {
    if (local) local.getTracks().forEach((t) => t.stop());
    local = null;
    const c = constraints();
    if (!c.audio && !c.video) { $('preview').srcObject = null; return; }
    try {
      local = await navigator.mediaDevices.getUserMedia(c);
      $('preview').srcObject = local;
      lobbyMsg('');
    } catch (e) {
      $('preview').srcObject = null;
      if (e && (e.name === 'NotAllowedError' || e.name === 'SecurityError')) lobbyMsg(S.err_permission);
      else if (e && (e.name === 'NotFoundError' || e.name === 'OverconstrainedError')) lobbyMsg(S.err_no_devices);
      else lobbyMsg(S.err_no_devices);
    }
  }

  async function listDevices() {
    if (!navigator.mediaDevices || !navigator.mediaDevices.enumerateDevices) return;
    const devices = await navigator.mediaDevices.enumerateDevices();
    const fill = (id, kind) => {
      const el = $(id);
      if (!el) return;
      const chosen = el.value;
      el.textContent = '';
      const list = devices.filter((d) => d.kind === kind);
      list.forEach((d, i) => {
        const o = document.createElement('option');
        o.value = d.deviceId;
        o.textContent = d.label || `${kind === 'videoinput' ? S.camera : S.microphone} ${i + 1}`;
        el.append(o);
      });
      const none = document.createElement('option');
      none.value = 'none';
      none.textContent = S.none;
      el.append(none);
      if (chosen && [...el.options].some((o) => o.value === chosen)) el.value = chosen;
      else if (!list.length) el.value = 'none';
    };
    fill('camera', 'videoinput');
    fill('microphone', 'audioinput');
  }

  // The microphone's level in the lobby, so a silent or wrong microphone is noticed
  // before anyone hears it. Measured in the page; nothing of it is sent.
  let meter = null;
  function stopMeter() {
    if (meter) { meter(); meter = null; }
  }
  function startMeter() {
    stopMeter();
    const el = $('mic-level');
    if (!el) return;
    const track = local && local.getAudioTracks()[0];
    const AC = window.AudioContext || window.webkitAudioContext;
    el.hidden = !track;
    el.value = 0;
    if (!track || !AC) return;
    const ctx = new AC();
    const analyser = ctx.createAnalyser();
    analyser.fftSize = 512;
    ctx.createMediaStreamSource(new MediaStream([track])).connect(analyser);
    const data = new Float32Array(analyser.fftSize);
    let frame = 0;
    const tick = () => {
      analyser.getFloatTimeDomainData(data);
      let peak = 0;
      for (const v of data) peak = Math.max(peak, Math.abs(v));
      // Falls back slowly, so a syllable stays visible.
      el.value = Math.min(1, Math.max(peak, el.value * 0.9));
      frame = requestAnimationFrame(tick);
    };
    frame = requestAnimationFrame(tick);
    // Browsers start audio only after a gesture: the first key or click will do.
    const resume = () => { if (ctx.state === 'suspended') ctx.resume().catch(() => {}); };
    resume();
    document.addEventListener('pointerdown', resume);
    document.addEventListener('keydown', resume);
    meter = () => {
      cancelAnimationFrame(frame);
      document.removeEventListener('pointerdown', resume);
      document.removeEventListener('keydown', resume);
      ctx.close().catch(() => {});
      el.value = 0;
    };
  }

  async function lobby() {
    // The name entered before in this tab (joining again, or after the waiting page):
    // kept in the tab's session storage only, never sent anywhere but to join.
    const known = store('raum-name');
    if (known && !$('name').value) $('name').value = known;
    $('name').focus();
    // Camera and microphone are asked for first (the preview), and again when another
    // is chosen; a Join pressed meanwhile waits for the latest rather than submitting
    // the form or joining without them.
    let devicesReady = Promise.resolve();
    const after = (step) => { devicesReady = devicesReady.then(step).catch((e) => console.warn('devices', e)); };
    let joining = false;
    $('join-form').addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const name = $('name').value.trim();
      if (!name || name.length > 64) { lobbyMsg(S.err_name); $('name').focus(); return; }
      if (joining) return;
      joining = true;
      // A device chosen while waiting queues behind this: wait until nothing is left.
      for (let seen = null; seen !== devicesReady;) { seen = devicesReady; await seen; }
      myName = name;
      store('raum-name', name);
      stopMeter();
      // Joining muted or without the camera: the tracks go out disabled (and can be
      // switched on in the call).
      audioMuted = !!($('join-muted') && $('join-muted').checked);
      videoMuted = !!($('join-camera-off') && $('join-camera-off').checked);
      if (local) {
        local.getAudioTracks().forEach((t) => { t.enabled = !audioMuted; });
        local.getVideoTracks().forEach((t) => { t.enabled = !videoMuted; });
      }
      $('lobby').hidden = true;
      $('call').hidden = false;
      const roomy = !phone() && window.innerWidth >= 900;
      setPanel('people', roomy);
      setPanel('chat', roomy);
      addTile('self', `${myName} (${S.you})`, local, true);
      updateControls();
      join();
    });
    if (!(M.audio || M.video)) return;
    if (!navigator.mediaDevices) { lobbyMsg(S.err_no_devices); return; }
    after(async () => {
      await preview(); // asks for permission, so device labels become known
      await listDevices();
      if (local) {
        // Select the devices actually in use.
        for (const t of local.getTracks()) {
          const el = $(t.kind === 'video' ? 'camera' : 'microphone');
          const id = t.getSettings && t.getSettings().deviceId;
          if (el && id) el.value = id;
        }
      }
      for (const id of ['camera', 'microphone']) {
        if ($(id)) {
          $(id).addEventListener('change', () => after(async () => {
            if (joining) return; // the call's own devices are chosen in the call
            await preview();
            startMeter();
          }));
        }
      }
      if (!joining) startMeter();
    });
  }

  // ---- call ----------------------------------------------------------------

  const status = (text) => { $('status').textContent = text || ''; };
  // A status that goes by itself after a few seconds (unless replaced meanwhile).
  function toast(text) {
    status(text);
    setTimeout(() => { if ($('status').textContent === text) status(''); }, 5000);
  }

  function send(msg) {
    if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(msg));
  }

  function addTile(id, label, stream, self) {
    let tile = tiles.get(id);
    if (!tile) {
      tile = document.createElement('figure');
      tile.className = 'tile';
      tile.dataset.peer = id;
      const video = document.createElement('video');
      video.autoplay = true;
      video.playsInline = true;
      if (self) video.muted = true; // never hear yourself
      const caption = document.createElement('figcaption');
      const name = document.createElement('span');
      name.className = 'name';
      caption.append(name);
      // Shown instead of the picture while the camera is off (or there is none).
      const initials = document.createElement('span');
      initials.className = 'initials';
      initials.setAttribute('aria-hidden', 'true');
      // How well this person's media comes (or, on one's own tile, goes).
      const quality = document.createElement('span');
      quality.className = 'quality';
      quality.setAttribute('role', 'img');
      quality.hidden = true;
      quality.innerHTML = '<i></i><i></i><i></i>';
      tile.append(video, initials, caption, quality);
      if (!self && !id.endsWith('-screen')) {
        // Pinned, a person stays large (the teacher, the board camera) whoever talks.
        const pin = document.createElement('button');
        pin.type = 'button';
        pin.className = 'pin';
        pin.addEventListener('click', () => { pinned = pinned === id ? null : id; layout(); });
        tile.append(pin);
      }
      if (!self && sinkId && video.setSinkId) video.setSinkId(sinkId).catch(() => {});
      if (id.endsWith('-screen')) tile.classList.add('screen');
      $('grid').append(tile);
      tiles.set(id, tile);
    }
    setCaption(tile, label);
    const video = tile.querySelector('video');
    if (stream && video.srcObject !== stream) video.srcObject = stream;
    tileState(id);
    layout();
    return tile;
  }

  // A tile's name (the muted mark, if any, follows it); cut short with an ellipsis
  // on a small tile, whole in its tooltip.
  function setCaption(tile, text) {
    const name = tile.querySelector('figcaption .name');
    name.textContent = text;
    name.title = text;
  }

  // A tile's camera-off look and initials, from what is known of its person (a
  // latecomer learns who has the camera off from `welcome`).
  function tileState(id) {
    const tile = tiles.get(id);
    if (!tile || id.endsWith('-screen')) return;
    const p = id === 'self' ? { name: myName, video: videoMuted } : peers.get(id);
    if (!p) return;
    const video = tile.querySelector('video');
    const hasVideo = !!(video.srcObject && video.srcObject.getVideoTracks().length);
    tile.classList.toggle('camera-off', !!p.video || !hasVideo);
    tile.querySelector('.initials').textContent = initialsOf(p.name);
    // Muted: a crossed-out microphone in the caption, on one's own tile too.
    const muted = id === 'self' ? audioMuted : !!p.audio;
    const caption = tile.querySelector('figcaption');
    let mark = caption.querySelector('.muted');
    if (muted && !mark) {
      mark = document.createElement('span');
      mark.className = 'muted';
      mark.innerHTML = icon('mic-off');
      mark.setAttribute('role', 'img');
      mark.setAttribute('aria-label', S.muted);
      caption.append(mark);
    } else if (!muted && mark) {
      mark.remove();
    }
  }

  function initialsOf(name) {
    const words = String(name || '').trim().split(/\s+/).filter(Boolean);
    const letters = words.length > 1 ? [words[0], words[words.length - 1]] : words;
    return letters.map((w) => [...w][0] || '').join('').toUpperCase();
  }

  function removeTile(id) {
    const tile = tiles.get(id);
    if (tile) { tile.remove(); tiles.delete(id); }
    if (pinned === id) pinned = null;
    layout();
  }

  // Which tiles are shown and where. The grid view pages them and picks the number
  // of columns that makes 16:9 tiles largest on the stage; the speaker view (and a
  // shared screen, in either view) shows one large, the others in a strip under it.
  function layout() {
    const grid = $('grid');
    const ids = [...tiles.keys()];
    const screen = ids.find((i) => i.endsWith('-screen'));
    const people = ids.filter((i) => i !== screen);
    const focus = screen || (pinned && tiles.has(pinned) ? pinned : null) || (view === 'speaker'
      ? (tiles.has(speakerId) ? speakerId : people.find((i) => i !== 'self') || people[0])
      : null);
    const per = pageSize();
    const pages = focus ? 1 : Math.max(1, Math.ceil(people.length / per));
    pageNo = Math.min(pageNo, pages - 1);
    const shown = focus ? [focus, ...people.filter((i) => i !== focus)] : people.slice(pageNo * per, (pageNo + 1) * per);
    for (const [id, tile] of tiles) {
      tile.hidden = !shown.includes(id);
      tile.classList.toggle('main', id === focus);
      tile.classList.toggle('speaking', id === speakerId);
      renderPin(id, tile);
    }
    place(shown, focus);
    grid.dataset.count = String(shown.length);
    const pager = $('pager');
    if (pager) {
      pager.hidden = pages < 2;
      $('page').textContent = S.page_of.replace('{n}', pageNo + 1).replace('{m}', pages);
      $('page-prev').disabled = pageNo === 0;
      $('page-next').disabled = pageNo >= pages - 1;
    }
    const v = $('view');
    if (v) {
      setButton(v, view === 'grid' ? 'speaker' : 'grid', view === 'grid' ? S.view_speaker : S.view_grid);
      v.setAttribute('aria-pressed', String(view === 'speaker'));
    }
    sendLayoutSoon();
  }

  // A tile's pin button: its icon, state and name.
  function renderPin(id, tile) {
    const pin = tile.querySelector('.pin');
    if (!pin) return;
    const on = pinned === id;
    pin.innerHTML = icon(on ? 'shrink' : 'expand');
    pin.setAttribute('aria-pressed', String(on));
    pin.setAttribute('aria-label', (on ? S.unpin : S.pin).replace('{name}', label(id)));
    pin.title = pin.getAttribute('aria-label');
  }

  // The largest 16:9 tiles that `n` of fit in w x h, and in how many columns.
  function fit(n, w, h) {
    let best = { cols: 1, width: 0 };
    for (let cols = 1; cols <= n; cols++) {
      const rows = Math.ceil(n / cols);
      const width = Math.min((w - (cols - 1) * GAP) / cols, ((h - (rows - 1) * GAP) / rows) * ASPECT);
      if (width > best.width) best = { cols, width };
    }
    best.width = Math.max(0, Math.floor(best.width));
    best.height = Math.floor(best.width / ASPECT);
    return best;
  }

  function put(id, x, y, w, h) {
    const st = tiles.get(id).style;
    st.left = `${Math.round(x)}px`;
    st.top = `${Math.round(y)}px`;
    st.width = `${w}px`;
    st.height = `${h}px`;
  }

  // Places the shown tiles on the stage: a centred grid, or `focus` large over a
  // strip of the others (which scrolls sideways when they do not fit).
  function place(shown, focus) {
    const stage = $('stage');
    const W = stage.clientWidth;
    const H = stage.clientHeight;
    if (!W || !H || !shown.length) return;
    if (!focus || shown.length === 1) {
      const f = fit(shown.length, W, H);
      const rows = Math.ceil(shown.length / f.cols);
      const top = (H - rows * f.height - (rows - 1) * GAP) / 2;
      shown.forEach((id, i) => {
        const row = Math.floor(i / f.cols);
        // The last row, if not full, is centred too.
        const inRow = row === rows - 1 ? shown.length - row * f.cols : f.cols;
        const left = (W - inRow * f.width - (inRow - 1) * GAP) / 2;
        put(id, left + (i % f.cols) * (f.width + GAP), top + row * (f.height + GAP), f.width, f.height);
      });
      return;
    }
    // A fifth of the stage's height (at most 150 px), and on a narrow one small
    // enough that three tiles fit across.
    const stripH = Math.round(Math.min(150, Math.max(64, H * 0.2), (W - 2 * GAP) / 3 / ASPECT));
    const stripW = Math.round(stripH * ASPECT);
    const main = fit(1, W, H - stripH - GAP);
    put(focus, (W - main.width) / 2, (H - stripH - GAP - main.height) / 2, main.width, main.height);
    const rest = shown.filter((id) => id !== focus);
    const total = rest.length * stripW + (rest.length - 1) * GAP;
    const left = total <= W ? (W - total) / 2 : 0;
    rest.forEach((id, i) => put(id, left + i * (stripW + GAP), H - stripH, stripW, stripH));
  }

  // Tells the SFU the videos on screen and their sizes in device pixels, when that
  // changed (at most every 250 ms).
  let layoutTimer = null;
  function sendLayoutSoon() {
    if (layoutTimer) return;
    layoutTimer = setTimeout(() => { layoutTimer = null; sendLayout(); }, 250);
  }

  function sendLayout() {
    if (!myId || !ws || ws.readyState !== WebSocket.OPEN) return;
    const dpr = window.devicePixelRatio || 1;
    const area = $('grid').getBoundingClientRect();
    const list = [];
    for (const [id, tile] of tiles) {
      // Screens always come (the SFU does not pause them): not part of the layout.
      if (id === 'self' || id.endsWith('-screen') || tile.hidden) continue;
      const r = tile.getBoundingClientRect();
      // In the stage's visible part (it scrolls when a strip is wider) and the window's.
      const onScreen = r.width > 0 && r.height > 0 && r.bottom > Math.max(0, area.top) &&
        r.top < Math.min(window.innerHeight, area.bottom) && r.right > Math.max(0, area.left) &&
        r.left < Math.min(window.innerWidth, area.right);
      if (!onScreen) continue;
      const side = (x) => Math.min(8192, Math.max(0, Math.round(x * dpr)));
      list.push({ id, width: side(r.width), height: side(r.height) });
    }
    list.sort((a, b) => (a.id < b.id ? -1 : 1));
    const text = JSON.stringify(list);
    if (text === lastLayout) return;
    lastLayout = text;
    send({ type: 'layout', tiles: list });
  }

  // The SFU says how many of the camera's layers anyone needs: the others are off.
  async function setLayers(active) {
    const sender = videoSender;
    if (!sender) return;
    const params = sender.getParameters();
    if (!params.encodings || !params.encodings.length) return;
    params.encodings.forEach((enc, i) => { enc.active = i < active; });
    try { await sender.setParameters(params); } catch (e) { console.warn('layers', e); }
  }

  function label(id) {
    if (id.endsWith('-screen')) {
      const owner = peers.get(id.slice(0, -'-screen'.length));
      return owner ? S.screen_of.replace('{name}', owner.name) : '';
    }
    const p = peers.get(id);
    return p ? p.name : '';
  }

  function renderPeople() {
    const ul = $('people');
    ul.textContent = '';
    $('people-head').textContent = `${S.people} (${peers.size + 1})`;
    const me = document.createElement('li');
    me.textContent = `${myName} (${S.you})` + (audioMuted ? ` · ${S.muted}` : '');
    ul.append(me);
    if (myHand) me.textContent += ` · ${S.hand_raised}`;
    if (role === 'host') me.textContent += ` · ${S.host}`;
    for (const [id, p] of peers) {
      const li = document.createElement('li');
      li.dataset.peer = id;
      const who = document.createElement('span');
      who.textContent = p.name + (p.host ? ` · ${S.host}` : '') + (p.hand ? ` · ${S.hand_raised}` : '') + (p.audio ? ` · ${S.muted}` : '');
      li.append(who);
      if (role === 'host') {
        const act = (cls, text, msg, confirmText) => {
          const b = document.createElement('button');
          b.type = 'button';
          b.className = 'small ' + cls;
          b.textContent = text;
          b.setAttribute('aria-label', `${text}: ${p.name}`);
          b.addEventListener('click', () => {
            if (confirmText && !window.confirm(confirmText)) return;
            send(msg);
          });
          li.append(b);
        };
        if (p.hand) act('lower-hand', S.lower_hand, { type: 'lower-hand', id });
        if (!p.host) {
          // Also for someone muted already: a host's mute holds (they cannot unmute
          // where the meeting does not let them) until a host allows it.
          if (M.audio) act('mute-one', S.host_mute, { type: 'mute-participant', id, audio: true });
          if (p.audio && M.audio) act('allow-one', S.allow_unmute, { type: 'mute-participant', id, audio: false });
          if (M.video) act('camera-one', S.host_camera_off, { type: 'mute-participant', id, video: true });
          act('remove danger', S.remove, { type: 'remove', id }, S.remove_confirm.replace('{name}', p.name));
        }
      }
      ul.append(li);
    }
    if (!peers.size) {
      const li = document.createElement('li');
      li.className = 'hint';
      li.textContent = S.alone;
      ul.append(li);
    }
    for (const [id] of peers) {
      const tile = tiles.get(id);
      if (tile) { setCaption(tile, label(id)); renderPin(id, tile); }
      tileState(id);
    }
  }

  // Hosts: who waits in the lobby, each with "let in" and "turn away".
  function renderKnocks() {
    const box = $('knocks');
    const ul = $('knock-list');
    if (!box || !ul) return;
    ul.textContent = '';
    for (const [id, name] of knocks) {
      const li = document.createElement('li');
      li.dataset.peer = id;
      const who = document.createElement('span');
      who.textContent = name;
      li.append(who);
      // Nobody more fits while the meeting is full (the SFU would refuse it).
      const full = peers.size + 1 >= M.maxParticipants;
      for (const [cls, text, type] of [['admit', S.admit, 'admit'], ['refuse danger', S.refuse, 'refuse']]) {
        const b = document.createElement('button');
        b.type = 'button';
        b.className = 'small ' + cls;
        b.textContent = text;
        if (type === 'admit' && full) { b.disabled = true; b.title = S.full_title; }
        b.setAttribute('aria-label', `${text}: ${name}`);
        b.addEventListener('click', () => send({ type, id }));
        li.append(b);
      }
      ul.append(li);
    }
    box.hidden = !knocks.size;
  }

  function renderHost() {
    $('host-controls').hidden = role !== 'host';
    const lock = $('lock');
    lock.textContent = locked ? S.unlock : S.lock;
    lock.setAttribute('aria-pressed', String(locked));
    const hand = $('hand');
    setButton(hand, 'hand', myHand ? S.lower_hand : S.raise_hand);
    hand.setAttribute('aria-pressed', String(myHand));
    renderKnocks();
    renderToggles();
  }

  function chatLine(from, text, mine) {
    const list = $('messages');
    if (!list) return;
    const li = document.createElement('li');
    if (mine) li.className = 'mine';
    // When it was said, in the participant's own clock (kept nowhere but here).
    const now = new Date();
    const at = document.createElement('time');
    at.dateTime = now.toISOString();
    at.textContent = new Intl.DateTimeFormat(document.documentElement.lang, { hour: '2-digit', minute: '2-digit' }).format(now);
    li.append(at, ' ');
    const who = document.createElement('b');
    who.textContent = from;
    const what = document.createElement('span');
    what.textContent = text;
    li.append(who, ' ', what);
    list.append(li);
    li.scrollIntoView({ block: 'nearest' });
  }

  function notice(text) {
    const list = $('messages');
    if (!list) { status(text); return; }
    const li = document.createElement('li');
    li.className = 'hint';
    li.textContent = text;
    list.append(li);
  }

  function updateControls() {
    const mic = $('mic');
    if (mic) {
      setButton(mic, audioMuted ? 'mic-off' : 'mic', audioMuted ? S.unmute : S.mute);
      mic.setAttribute('aria-pressed', String(audioMuted));
      mic.disabled = !(local && local.getAudioTracks().length);
    }
    const cam = $('cam');
    if (cam) {
      setButton(cam, videoMuted ? 'cam-off' : 'cam', videoMuted ? S.camera_on : S.camera_off);
      cam.setAttribute('aria-pressed', String(videoMuted));
      cam.disabled = !(local && local.getVideoTracks().length);
    }
  }

  function setMute(audio, video) {
    audioMuted = audio;
    videoMuted = video;
    if (local) {
      local.getAudioTracks().forEach((t) => { t.enabled = !audioMuted; });
      local.getVideoTracks().forEach((t) => { t.enabled = !videoMuted; });
    }
    send({ type: 'mute', audio: audioMuted, video: videoMuted });
    updateControls();
    renderPeople();
    tileState('self');
  }

  // ---- the side panel: people and chat -------------------------------------

  // Either can close; with both closed the stage takes their room. Both are open at
  // first where the screen leaves the stage room beside them; on phones, where they
  // open over the stage, one at a time and closed at first.
  const phone = () => window.matchMedia('(max-width: 760px)').matches;
  const panels = { people: false, chat: false };
  let unread = 0; // chat lines from others while the chat was closed

  function setPanel(name, open) {
    const panel = $(`${name}-panel`);
    if (!panel) return;
    panels[name] = open;
    panel.hidden = !open;
    if (open && name === 'chat') unread = 0;
    if (open && phone()) for (const other of Object.keys(panels)) if (other !== name && panels[other]) setPanel(other, false);
    $('call').classList.toggle('no-side', !Object.values(panels).some(Boolean));
    renderToggles();
  }

  function renderToggles() {
    const badge = (el, n, text) => {
      if (!n) return;
      const b = document.createElement('span');
      b.className = 'badge';
      b.textContent = String(n);
      b.setAttribute('aria-hidden', 'true');
      el.append(b);
      el.setAttribute('aria-label', `${el.getAttribute('aria-label')}, ${text}`);
    };
    const people = $('people-toggle');
    if (people) {
      setButton(people, 'people', S.people_toggle);
      people.setAttribute('aria-expanded', String(panels.people));
      // Hosts: how many wait in the lobby.
      if (role === 'host') badge(people, knocks.size, `${S.lobby_heading}: ${knocks.size}`);
    }
    const chat = $('chat-toggle');
    if (chat) {
      setButton(chat, 'chat', S.chat);
      chat.setAttribute('aria-expanded', String(panels.chat));
      badge(chat, unread, S.chat_unread.replace('{n}', unread));
    }
  }

  // ---- banner: one's own connection ------------------------------------------

  // What is wrong with this participant's own connection, in a bar over the stage:
  // 'lost' (signaling reconnects), 'media' (the media path is interrupted), 'weak'
  // (poor for a while), or nothing.
  let bannerWhy = null;
  const bannersShown = []; // for tests: every text the banner showed
  function banner(why) {
    bannerWhy = why;
    const text = { lost: S.err_lost, media: S.media_interrupted, weak: S.weak_connection }[why] || '';
    const el = $('banner');
    if (el.textContent !== text) {
      el.textContent = text;
      if (text) bannersShown.push(text);
    }
    el.hidden = !text;
  }

  // ---- connection quality ----------------------------------------------------

  // Every 2 s from getStats: for each tile, what arrives of that person's media
  // (packets lost, frames a second while its video is on screen) over this
  // connection's round trip to the SFU; for one's own tile, what the SFU reports of
  // what it receives from us (its receiver reports). Three levels, in colour and in
  // words. One's own connection weak (a long round trip, the SFU losing what we
  // send, or loss from every sender) for two samples in a row puts up the banner.
  let lastSample = null;
  let weakSamples = 0;

  function rate(loss, ms, fps) {
    let level = 'good';
    if (loss > 3 || (ms !== null && ms > 300) || (fps !== null && fps < 12)) level = 'fair';
    if (loss > 10 || (ms !== null && ms > 600) || (fps !== null && fps < 5)) level = 'poor';
    return { level, loss, ms, fps };
  }

  function showQuality(tile, q) {
    const el = tile.querySelector('.quality');
    if (!q) { el.hidden = true; return; }
    el.hidden = false;
    el.className = `quality ${q.level}`;
    const detail = S.quality_detail
      .replace('{loss}', q.loss.toFixed(q.loss < 10 ? 1 : 0))
      .replace('{fps}', q.fps === null ? '–' : String(Math.round(q.fps)))
      .replace('{rtt}', q.ms === null ? '–' : String(q.ms));
    const text = `${S[`quality_${q.level}`]}: ${detail}`;
    el.setAttribute('aria-label', text);
    el.title = text;
    tile.dataset.quality = q.level;
  }

  async function measure() {
    const conn = pc;
    if (!conn || !myId) return;
    let report;
    try { report = await conn.getStats(); } catch { return; }
    if (conn !== pc) return;
    const at = performance.now();
    const byTrack = new Map();
    let pairId = null;
    const own = { lost: 0, rtt: null, fps: null };
    report.forEach((r) => {
      if (r.type === 'inbound-rtp') {
        byTrack.set(r.trackIdentifier, { lost: r.packetsLost || 0, received: r.packetsReceived || 0, frames: r.framesDecoded || 0, video: r.kind === 'video' });
      } else if (r.type === 'transport' && r.selectedCandidatePairId) {
        pairId = r.selectedCandidatePairId;
      } else if (r.type === 'remote-inbound-rtp') {
        own.lost = Math.max(own.lost, (r.fractionLost || 0) * 100);
        if (typeof r.roundTripTime === 'number') own.rtt = Math.max(own.rtt || 0, r.roundTripTime);
      } else if (r.type === 'outbound-rtp' && r.kind === 'video' && typeof r.framesPerSecond === 'number') {
        own.fps = Math.max(own.fps || 0, r.framesPerSecond);
      }
    });
    const pair = pairId && report.get(pairId);
    const rtt = pair && typeof pair.currentRoundTripTime === 'number' ? pair.currentRoundTripTime : own.rtt;
    const ms = rtt === null || rtt === undefined ? null : Math.round(rtt * 1000);
    const onScreen = new Set((lastLayout ? JSON.parse(lastLayout) : []).map((t) => t.id));
    const prev = lastSample;
    lastSample = { at, byTrack, onScreen };
    if (!prev) return;
    const secs = (at - prev.at) / 1000;
    // Loss on what arrives is one's own downlink's only where every sender shows it
    // (one sender's loss may be its own uplink's).
    let lossyTiles = 0;
    let heardTiles = 0;
    for (const [id, tile] of tiles) {
      if (id === 'self') {
        const sending = local && local.getTracks().length;
        const cameraOn = local && local.getVideoTracks().length && !videoMuted;
        showQuality(tile, sending ? rate(own.lost, ms, cameraOn ? own.fps : null) : null);
        continue;
      }
      const stream = tile.querySelector('video').srcObject;
      let lost = 0;
      let got = 0;
      let frames = null;
      for (const t of stream ? stream.getTracks() : []) {
        const a = byTrack.get(t.id);
        const b = prev.byTrack.get(t.id);
        if (!a || !b) continue;
        lost += Math.max(0, a.lost - b.lost);
        got += Math.max(0, a.received - b.received);
        if (a.video) frames = a.frames - b.frames;
      }
      if (got + lost) {
        heardTiles += 1;
        if (lost > 0.1 * (got + lost)) lossyTiles += 1;
      }
      // Frames count only for a video on screen since the sample before (the SFU
      // sends none off screen) and not switched off.
      const watching = onScreen.has(id) && prev.onScreen.has(id) && !tile.classList.contains('camera-off');
      const fps = watching && frames !== null ? frames / secs : null;
      showQuality(tile, got + lost || fps !== null ? rate(got + lost ? (100 * lost) / (got + lost) : 0, ms, fps) : null);
    }
    const downlinkLossy = heardTiles >= 2 && lossyTiles === heardTiles;
    const weak = (ms !== null && ms > 600) || own.lost > 10 || downlinkLossy;
    weakSamples = weak ? weakSamples + 1 : 0;
    if (weakSamples >= 2 && !bannerWhy) banner('weak');
    else if (!weak && bannerWhy === 'weak') banner(null);
  }
  setInterval(measure, 2000);

  // ---- devices during the call -----------------------------------------------

  let sinkId = ''; // the speaker chosen in the call ('' the browser's default)

  // The devices of each kind, the ones in use selected. A kind this participant does
  // not send cannot be switched to mid-call (that would take a new track and a new
  // offer): its list is disabled.
  async function fillDevices() {
    const devices = await navigator.mediaDevices.enumerateDevices();
    const fill = (id, kind, current) => {
      const el = $(id);
      if (!el) return;
      el.textContent = '';
      devices.filter((d) => d.kind === kind).forEach((d, i) => {
        el.append(new Option(d.label || `${kind === 'audiooutput' ? S.speaker : kind === 'videoinput' ? S.camera : S.microphone} ${i + 1}`, d.deviceId));
      });
      if (current && [...el.options].some((o) => o.value === current)) el.value = current;
    };
    const inUse = (kind) => {
      const t = local && (kind === 'video' ? local.getVideoTracks() : local.getAudioTracks())[0];
      return t ? t.getSettings().deviceId : null;
    };
    fill('call-camera', 'videoinput', inUse('video'));
    fill('call-microphone', 'audioinput', inUse('audio'));
    if ($('call-camera')) $('call-camera').disabled = !inUse('video');
    if ($('call-microphone')) $('call-microphone').disabled = !inUse('audio');
    // Choosing the speaker: where the browser can (not Safari or Firefox on phones).
    const canChoose = 'setSinkId' in HTMLMediaElement.prototype && devices.some((d) => d.kind === 'audiooutput');
    document.querySelectorAll('.speaker-choice').forEach((el) => { el.hidden = !canChoose; });
    if (canChoose) fill('call-speaker', 'audiooutput', sinkId || 'default');
  }

  // Another camera or microphone, mid-call: the new track replaces the old one in
  // its sender (no new offer; the others' tiles just go on), muted as the old was.
  async function switchDevice(kind, deviceId) {
    const old = local && (kind === 'video' ? local.getVideoTracks() : local.getAudioTracks())[0];
    if (!old || !deviceId || old.getSettings().deviceId === deviceId) return;
    $('devices-msg').textContent = '';
    const c = kind === 'video'
      ? { video: { deviceId: { exact: deviceId }, width: { ideal: 1280 }, height: { ideal: 720 } } }
      : { audio: { deviceId: { exact: deviceId } } };
    let track;
    try {
      track = (await navigator.mediaDevices.getUserMedia(c)).getTracks()[0];
    } catch {
      $('devices-msg').textContent = S.device_failed;
      return;
    }
    track.enabled = !(kind === 'video' ? videoMuted : audioMuted);
    const sender = pc && pc.getSenders().find((x) => x.track === old);
    try {
      if (sender) await sender.replaceTrack(track);
    } catch {
      track.stop();
      $('devices-msg').textContent = S.device_failed;
      return;
    }
    local.removeTrack(old);
    old.stop();
    local.addTrack(track);
    const self = tiles.get('self');
    if (self) { const v = self.querySelector('video'); v.srcObject = null; v.srcObject = local; }
  }

  async function setSpeaker(id) {
    sinkId = id;
    for (const [tid, tile] of tiles) {
      const v = tile.querySelector('video');
      if (tid === 'self' || !v.setSinkId) continue;
      try { await v.setSinkId(id); } catch { $('devices-msg').textContent = S.device_failed; }
    }
  }

  // ---- who is talking --------------------------------------------------------

  // A ring on every tile whose voice is heard now, one's own too: from the audio
  // levels the browser measures (received tracks, and the microphone), held a
  // moment so it does not flicker between syllables.
  const TALKING = 0.03;
  const TALK_HOLD_MS = 600;
  async function levels() {
    const conn = pc;
    if (!conn || !myId) return;
    let report;
    try { report = await conn.getStats(); } catch { return; }
    const heard = new Map();
    let own = 0;
    report.forEach((r) => {
      if (r.kind !== 'audio' || typeof r.audioLevel !== 'number') return;
      if (r.type === 'inbound-rtp') heard.set(r.trackIdentifier, r.audioLevel);
      if (r.type === 'media-source') own = Math.max(own, r.audioLevel);
    });
    const now = Date.now();
    for (const [id, tile] of tiles) {
      let level = 0;
      if (id === 'self') {
        level = audioMuted ? 0 : own;
      } else {
        const s = tile.querySelector('video').srcObject;
        if (s) for (const t of s.getAudioTracks()) level = Math.max(level, heard.get(t.id) || 0);
      }
      if (level > TALKING) tile.dataset.talkUntil = String(now + TALK_HOLD_MS);
      tile.classList.toggle('talking', Number(tile.dataset.talkUntil || 0) > now);
    }
  }
  setInterval(levels, 250);

  // ---- screen sharing ------------------------------------------------------

  // Phones' browsers cannot share (no getDisplayMedia): no button there. The meeting
  // may let only hosts share, or nobody; the SFU enforces it either way.
  function canShare() {
    return !!(navigator.mediaDevices && navigator.mediaDevices.getDisplayMedia) && M.video &&
      (M.screenShare === 'everyone' || (M.screenShare === 'hosts' && role === 'host'));
  }

  function updateShare() {
    const b = $('share');
    if (!b) return;
    b.hidden = !canShare();
    setButton(b, 'screen', sharing ? S.stop_share : S.share);
    b.setAttribute('aria-pressed', String(!!sharing));
    b.disabled = !sharing && !!sharer && sharer !== myId;
    b.title = b.disabled ? S.share_busy : '';
  }

  let starting = false; // the browser's picker is open
  async function share() {
    const conn = pc;
    if (sharing || starting || !conn || !myId) return;
    starting = true;
    let stream;
    try {
      stream = await navigator.mediaDevices.getDisplayMedia({ video: { frameRate: { ideal: 15, max: 30 } }, audio: false });
    } catch { return; } finally { starting = false; } // the person chose not to share
    const track = stream.getVideoTracks()[0];
    if (!track || conn !== pc || sharing) { stream.getTracks().forEach((t) => t.stop()); return; }
    track.contentHint = 'detail';
    // Also when the browser's own "stop sharing" bar ends it.
    track.addEventListener('ended', stopShare);
    sharing = track;
    if (screenTx) {
      const tx = screenTx;
      await tx.sender.replaceTrack(track);
      if (conn !== pc || sharing !== track) return; // reconnected or stopped meanwhile
      tx.direction = 'sendonly';
    } else {
      screenTx = conn.addTransceiver(track, { direction: 'sendonly', streams: [stream] });
    }
    updateShare();
    serially(renegotiate);
  }

  async function stopShare() {
    const track = sharing;
    if (!track) return;
    sharing = null;
    track.removeEventListener('ended', stopShare);
    track.stop();
    const tx = screenTx;
    if (tx && pc) {
      try { await tx.sender.replaceTrack(null); } catch { /* closed meanwhile */ }
      if (tx !== screenTx || sharing) return; // reconnected, or sharing again
      tx.direction = 'inactive';
      serially(renegotiate);
    }
    updateShare();
  }

  // Signaling work runs one step at a time, in order: a message is handled only after
  // the one before it (an answer applied before the next offer is looked at).
  let work = Promise.resolve();
  function serially(step) {
    work = work.then(step).catch((e) => console.warn('signaling', e));
    return work;
  }

  async function renegotiate() {
    const conn = pc;
    if (!conn || !myId) return;
    if (offering || conn.signalingState !== 'stable') { reoffer = true; return; }
    offering = true;
    reoffer = false;
    try {
      await conn.setLocalDescription(await conn.createOffer());
    } catch (e) {
      offering = false;
      throw e;
    }
    const msg = { type: 'offer', sdp: conn.localDescription.sdp };
    if (sharing && screenTx && screenTx.mid) msg.screen = screenTx.mid;
    send(msg);
  }

  function teardown() {
    if (sharing) { sharing.removeEventListener('ended', stopShare); sharing.stop(); }
    sharing = null;
    screenTx = null;
    sharer = null;
    offering = false;
    reoffer = false;
    if (pc) { pc.onconnectionstatechange = null; pc.close(); pc = null; }
    if (ws) { ws.onclose = null; ws.onmessage = null; ws.close(); ws = null; }
    for (const id of [...tiles.keys()]) if (id !== 'self') removeTile(id);
    peers.clear();
  }

  // The call is over for us. `again`: whether joining again can work (not after the
  // meeting ended, or a host removed or turned us away).
  function end(title, text, again = true) {
    leaving = true;
    teardown();
    banner(null);
    if (local) local.getTracks().forEach((t) => t.stop());
    $('call').hidden = true;
    $('knock').hidden = true;
    $('rejoin').hidden = !again;
    $('end').hidden = false;
    $('end-title').textContent = title;
    $('end-text').textContent = text || '';
    if (again) $('rejoin').focus();
  }

  function lost() {
    if (leaving) return;
    teardown();
    attempt += 1;
    if (attempt > 6) { end(S.err_gone, ''); return; }
    banner('lost');
    const delay = Math.min(8000, 500 * 2 ** (attempt - 1));
    setTimeout(join, delay);
  }

  async function join() {
    if (leaving) return;
    myId = null;
    // A fresh queue for this connection: a step of the old one may never settle (a
    // description being set when its connection closed).
    work = Promise.resolve();
    const socket = new WebSocket(wsUrl);
    ws = socket;
    const conn = new RTCPeerConnection({ bundlePolicy: 'max-bundle' });
    pc = conn;
    let sentTracks = 0;
    videoSender = null;
    if (local) {
      for (const t of local.getTracks()) {
        if (t.kind === 'video') {
          // Simulcast: three encodings, lowest first; a camera that cannot give
          // 720p sends what it can.
          const tr = conn.addTransceiver(t, { direction: 'sendonly', streams: [local], sendEncodings: ENCODINGS.map((x) => ({ ...x })) });
          videoSender = tr.sender;
        } else {
          conn.addTrack(t, local);
        }
        sentTracks += 1;
      }
    }
    if (!sentTracks) {
      // Nothing to send: still open a transport, so others' media can come.
      if (M.audio) conn.addTransceiver('audio', { direction: 'recvonly' });
      if (M.video) conn.addTransceiver('video', { direction: 'recvonly' });
    }
    conn.onicecandidate = (e) => send({ type: 'candidate', candidate: e.candidate ? e.candidate.toJSON() : null });
    conn.ontrack = (e) => {
      const stream = e.streams[0];
      if (!stream) return;
      const id = stream.id;
      addTile(id, label(id) || '…', stream, false);
      stream.onremovetrack = () => { if (!stream.getTracks().length) removeTile(id); else tileState(id); };
      stream.onaddtrack = () => tileState(id);
    };
    conn.onconnectionstatechange = () => {
      if (conn !== pc) return;
      if (conn.connectionState === 'connected') { attempt = 0; if (bannerWhy === 'media') banner(null); }
      if (conn.connectionState === 'disconnected' && !bannerWhy) banner('media');
      if (conn.connectionState === 'failed') { status(S.err_media); lost(); }
    };
    socket.onopen = async () => {
      const seat = store(seatKey);
      send(Object.assign({ type: 'join', name: myName, token }, seat ? { seat } : {}));
    };
    socket.onclose = () => { if (socket === ws) lost(); };
    socket.onmessage = (ev) => {
      let msg;
      try { msg = JSON.parse(ev.data); } catch { return; }
      serially(() => handle(msg, conn));
    };
  }

  async function handle(msg, conn) {
    if (conn !== pc) return;
    switch (msg.type) {
      case 'waiting': {
        // Not in yet: a host lets us in (welcome follows) or not (an error). The
        // connection works: a drop later starts the backoff afresh.
        attempt = 0;
        $('call').hidden = true;
        $('knock').hidden = false;
        const lobby = msg.reason === 'lobby';
        $('knock-title').textContent = lobby ? S.wait_lobby_title : S.wait_host_title;
        $('knock-text').textContent = lobby ? S.wait_lobby_text : S.wait_host_text;
        break;
      }
      case 'welcome': {
        myId = msg.id;
        if (bannerWhy === 'lost') banner(null);
        lastSample = null;
        $('knock').hidden = true;
        $('call').hidden = false;
        role = msg.role === 'host' ? 'host' : 'participant';
        updateShare();
        if (typeof msg.seat === 'string') store(seatKey, msg.seat);
        knocks.clear();
        for (const k of msg.lobby || []) knocks.set(String(k.id), k.name);
        myHand = false;
        renderHost();
        // TURN for networks that block UDP or most ports: this participant's own
        // credential, set before the offer starts gathering candidates.
        if (Array.isArray(msg.ice_servers) && msg.ice_servers.length) {
          conn.setConfiguration({ bundlePolicy: 'max-bundle', iceServers: msg.ice_servers });
        }
        lastLayout = '';
        peers.clear();
        for (const p of msg.peers) {
          peers.set(String(p.id), { name: p.name, audio: p.audio_muted, video: p.video_muted, hand: !!p.hand, host: !!p.host });
          if (p.screen) sharer = String(p.id);
        }
        renderPeople();
        updateShare();
        offering = true;
        const offer = await conn.createOffer();
        await conn.setLocalDescription(offer);
        send({ type: 'offer', sdp: conn.localDescription.sdp });
        if (audioMuted || videoMuted) send({ type: 'mute', audio: audioMuted, video: videoMuted });
        break;
      }
      case 'answer':
        await conn.setRemoteDescription({ type: 'answer', sdp: msg.sdp });
        offering = false;
        if (reoffer) await renegotiate();
        break;
      case 'offer': {
        if (conn.signalingState === 'have-local-offer') {
          // The SFU's offer crossed ours, which it refused: ours goes again after.
          await conn.setLocalDescription({ type: 'rollback' });
          offering = false;
          reoffer = true;
        }
        await conn.setRemoteDescription({ type: 'offer', sdp: msg.sdp });
        const answer = await conn.createAnswer();
        await conn.setLocalDescription(answer);
        send({ type: 'answer', sdp: conn.localDescription.sdp });
        if (reoffer) await renegotiate();
        break;
      }
      case 'screen': {
        const id = String(msg.id);
        if (msg.sharing) {
          sharer = id;
          const p = peers.get(id);
          if (p) notice(S.share_notice.replace('{name}', p.name));
        } else {
          if (sharer === id) sharer = null;
          // The SFU ended our share (a host switched our video off).
          if (id === myId && sharing) await stopShare();
        }
        updateShare();
        break;
      }
      case 'candidate':
        if (msg.candidate) await conn.addIceCandidate(msg.candidate);
        break;
      case 'peer-joined': {
        const p = msg.peer;
        peers.set(String(p.id), { name: p.name, audio: p.audio_muted, video: p.video_muted, hand: !!p.hand, host: !!p.host });
        notice(S.peer_joined.replace('{name}', p.name));
        renderPeople();
        break;
      }
      case 'peer-left': {
        const id = String(msg.id);
        const p = peers.get(id);
        peers.delete(id);
        removeTile(id);
        removeTile(`${id}-screen`);
        if (sharer === id) { sharer = null; updateShare(); }
        if (p) notice(S.peer_left.replace('{name}', p.name));
        renderPeople();
        break;
      }
      case 'mute': {
        const p = peers.get(String(msg.id));
        if (p) { p.audio = msg.audio; p.video = msg.video; renderPeople(); }
        tileState(String(msg.id));
        break;
      }
      case 'muted-by-host': {
        // The SFU already drops what a host muted; the browser stops sending it too.
        const audio = !!msg.audio;
        const video = !!msg.video;
        if (audio && !audioMuted) notice(S.muted_by_host);
        if (video && !videoMuted) notice(S.camera_off_by_host);
        if (!audio && !video) notice(S.mute_lifted);
        if ((audio && !audioMuted) || (video && !videoMuted)) {
          setMute(audioMuted || audio, videoMuted || video);
        }
        break;
      }
      case 'locked':
        locked = !!msg.locked;
        notice(locked ? S.locked_notice : S.unlocked_notice);
        renderHost();
        break;
      case 'lobby-joined':
        knocks.set(String(msg.peer.id), msg.peer.name);
        notice(S.knock_notice.replace('{name}', msg.peer.name));
        toast(S.knock_notice.replace('{name}', msg.peer.name));
        // Someone waits: a host sees it (over the stage on a phone: the badge says it).
        if (!panels.people && !phone()) setPanel('people', true);
        renderKnocks();
        renderToggles();
        break;
      case 'lobby-left':
        knocks.delete(String(msg.id));
        renderKnocks();
        renderToggles();
        break;
      case 'hand': {
        if (String(msg.id) === myId) {
          myHand = !!msg.raised;
          renderHost();
          renderPeople();
          break;
        }
        const p = peers.get(String(msg.id));
        if (p) {
          p.hand = !!msg.raised;
          if (p.hand) notice(S.hand_notice.replace('{name}', p.name));
          renderPeople();
        }
        break;
      }
      case 'speaker':
        speakerId = String(msg.id);
        layout();
        break;
      case 'layers':
        await setLayers(Number(msg.active));
        break;
      case 'chat': {
        const p = peers.get(String(msg.from));
        chatLine(p ? p.name : '?', msg.text, false);
        if (!panels.chat) { unread += 1; renderToggles(); }
        break;
      }
      case 'error':
        switch (msg.code) {
          case 'room-full': end(S.full_title, S.full_text.replace('{n}', M.maxParticipants)); break;
          case 'meeting-ended': end(S.ended_title, S.ended_text, false); break;
          case 'unauthorized': end(S.not_found_title, S.not_found_text); break;
          case 'not-started': leaving = true; teardown(); location.reload(); break;
          case 'rate-limited': status(S.err_rate); break;
          case 'forbidden': status(S.err_forbidden); break;
          case 'screen-refused':
            // A share the SFU did not take (hosts only, someone else shares, ...).
            await stopShare();
            status(sharer && sharer !== myId ? S.share_busy : S.err_forbidden);
            break;
          case 'locked': end(S.locked_title, S.locked_text); break;
          case 'removed': end(S.removed_title, S.removed_text, false); break;
          case 'refused': end(S.refused_title, S.refused_text, false); break;
          case 'unavailable': break; // the socket closes next: reconnect with backoff
          default: console.warn('signaling error', msg.code);
        }
        break;
      default:
        break;
    }
  }

  // ---- controls ------------------------------------------------------------

  setButton($('leave'), 'leave', S.leave);
  setButton($('invite'), 'link', S.invite);
  setButton($('devices-open'), 'settings', S.devices);
  updateControls();
  renderToggles();

  if ($('people-toggle')) $('people-toggle').addEventListener('click', () => setPanel('people', !panels.people));
  // A window narrowed to a phone's width: the panels would cover the stage there.
  window.matchMedia('(max-width: 760px)').addEventListener('change', (ev) => {
    if (ev.matches) for (const name of Object.keys(panels)) setPanel(name, false);
  });
  if ($('chat-toggle')) {
    $('chat-toggle').addEventListener('click', () => {
      setPanel('chat', !panels.chat);
      if (panels.chat) $('chat-input').focus();
    });
  }
  $('devices-open').addEventListener('click', async () => {
    $('devices-msg').textContent = '';
    try { await fillDevices(); } catch { /* listed as far as the browser lets us */ }
    $('devices').showModal();
  });
  if ($('call-camera')) $('call-camera').addEventListener('change', (ev) => switchDevice('video', ev.target.value));
  if ($('call-microphone')) $('call-microphone').addEventListener('change', (ev) => switchDevice('audio', ev.target.value));
  $('call-speaker').addEventListener('change', (ev) => setSpeaker(ev.target.value));
  // Full screen, where the browser has it (not on iPhones): the whole page, so
  // panels and dialogs work in it too.
  const fs = $('fullscreen');
  if (document.fullscreenEnabled) {
    const render = () => {
      const on = !!document.fullscreenElement;
      setButton(fs, on ? 'shrink' : 'expand', on ? S.exit_fullscreen : S.fullscreen);
      fs.setAttribute('aria-pressed', String(on));
    };
    render();
    fs.hidden = false;
    fs.addEventListener('click', () => {
      (document.fullscreenElement ? document.exitFullscreen() : document.documentElement.requestFullscreen()).catch(() => {});
    });
    document.addEventListener('fullscreenchange', render);
  }

  if ($('mic')) $('mic').addEventListener('click', () => setMute(!audioMuted, videoMuted));
  if ($('cam')) $('cam').addEventListener('click', () => {
    setMute(audioMuted, !videoMuted);
  });
  $('leave').addEventListener('click', () => {
    send({ type: 'leave' });
    end(S.left, '');
  });
  $('rejoin').addEventListener('click', () => location.reload());
  // The participants' link (also on the host link's page, which never hands out its
  // own).
  $('invite').addEventListener('click', async () => {
    const link = location.origin + M.invitePath;
    try {
      await navigator.clipboard.writeText(link);
    } catch {
      // No clipboard API (an insecure origin): the old way.
      const field = document.createElement('input');
      field.value = link;
      document.body.append(field);
      field.select();
      document.execCommand('copy');
      field.remove();
    }
    toast(S.invite_copied);
  });
  $('knock-leave').addEventListener('click', () => { send({ type: 'leave' }); end(S.left, ''); });
  $('hand').addEventListener('click', () => send({ type: 'hand', raised: !myHand }));
  $('share').addEventListener('click', () => (sharing ? stopShare() : share()));
  $('mute-all').addEventListener('click', () => send({ type: 'mute-everyone', audio: true }));
  $('lift-all').addEventListener('click', () => send({ type: 'mute-everyone', audio: false, video: false }));
  $('lock').addEventListener('click', () => send({ type: 'lock', locked: !locked }));
  $('end-all').addEventListener('click', () => { if (window.confirm(S.end_confirm)) send({ type: 'end-meeting' }); });
  if ($('view')) $('view').addEventListener('click', () => { view = view === 'grid' ? 'speaker' : 'grid'; pinned = null; layout(); });
  if ($('page-prev')) $('page-prev').addEventListener('click', () => { pageNo = Math.max(0, pageNo - 1); layout(); });
  if ($('page-next')) $('page-next').addEventListener('click', () => { pageNo += 1; layout(); });
  // Sizes and scrolling change where tiles go and what is on screen.
  window.addEventListener('resize', layout);
  window.addEventListener('scroll', sendLayoutSoon, { passive: true });
  $('grid').addEventListener('scroll', sendLayoutSoon, { passive: true });
  if (window.ResizeObserver) new ResizeObserver(() => layout()).observe($('stage'));
  if ($('chat-form')) {
    $('chat-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      const input = $('chat-input');
      const text = input.value.trim();
      if (!text || !ws || ws.readyState !== WebSocket.OPEN) return;
      send({ type: 'chat', text });
      chatLine(`${myName} (${S.you})`, text, true);
      input.value = '';
    });
  }
  // Keyboard: Ctrl/Cmd+D toggles the microphone, Ctrl/Cmd+E the camera (as in common
  // meeting tools); everything else is reachable with Tab.
  document.addEventListener('keydown', (ev) => {
    if (!(ev.ctrlKey || ev.metaKey) || $('call').hidden) return;
    if (ev.key === 'd' && $('mic') && !$('mic').disabled) { ev.preventDefault(); $('mic').click(); }
    if (ev.key === 'e' && $('cam') && !$('cam').disabled) { ev.preventDefault(); $('cam').click(); }
  });
  window.addEventListener('pagehide', () => { if (ws) send({ type: 'leave' }); });

  // For tests and curious people: the call's state, read-only.
  window.raum = {
    get id() { return myId; },
    get peers() { return [...peers.entries()].map(([id, p]) => ({ id, name: p.name })); },
    get tiles() { return [...tiles.keys()]; },
    get speaker() { return speakerId; },
    get talking() { return [...tiles.entries()].filter(([, t]) => t.classList.contains('talking')).map(([id]) => id); },
    get view() { return view; },
    get pinned() { return pinned; },
    get banners() { return [...bannersShown]; },
    get unread() { return unread; },
    get sinkId() { return sinkId; },
    get layout() { return lastLayout ? JSON.parse(lastLayout) : null; },
    get pc() { return pc; },
    get role() { return role; },
    get hand() { return myHand; },
    get locked() { return locked; },
    get lobby() { return [...knocks.entries()].map(([id, name]) => ({ id, name })); },
    get hands() { return [...peers.entries()].filter(([, p]) => p.hand).map(([id]) => id); },
    get sharer() { return sharer; },
    get sharing() { return !!sharing; },
    // What the share button does, for tests that act as a modified client would
    // (the SFU, not the button's absence, keeps them from sharing).
    share,
  };

  lobby();

  // ---- waiting page --------------------------------------------------------

  function waiting() {
    const lang = document.documentElement.lang;
    // The start in the participant's own time zone, which is named; and how long
    // until then.
    const when = { weekday: 'long', year: 'numeric', month: 'long', day: 'numeric', hour: '2-digit', minute: '2-digit', timeZoneName: 'short' };
    let start = null;
    for (const el of document.querySelectorAll('time[datetime]')) {
      const t = new Date(el.getAttribute('datetime'));
      if (!isNaN(t)) { el.textContent = new Intl.DateTimeFormat(lang, when).format(t); start = t; }
    }
    const countdown = document.getElementById('countdown');
    const rel = new Intl.RelativeTimeFormat(lang, { numeric: 'auto' });
    const tick = () => {
      if (!countdown || !start) return;
      const s = Math.round((start - Date.now()) / 1000);
      if (s <= 0) { countdown.textContent = ''; return; }
      const [n, unit] = s < 90 ? [s, 'second'] : s < 90 * 60 ? [Math.round(s / 60), 'minute']
        : s < 36 * 3600 ? [Math.round(s / 3600), 'hour'] : [Math.round(s / 86400), 'day'];
      countdown.textContent = countdown.dataset.template.replace('{rel}', rel.format(n, unit));
    };
    tick();
    setInterval(tick, 1000);
    const poll = async () => {
      try {
        const r = await fetch(location.pathname.replace(/\/+$/, '') + '/state', { cache: 'no-store' });
        const s = await r.json();
        if (['open', 'ended', 'full', 'not-found'].includes(s.state)) { location.reload(); return; }
      } catch { /* try again */ }
      setTimeout(poll, 4000 + Math.random() * 2000);
    };
    setTimeout(poll, 2000);
  }
})();
