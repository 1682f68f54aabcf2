// raum web client: the lobby (name, devices, preview), the call (grid, mute, camera,
// chat, people) and the waiting page. Plain JavaScript, no build step; the server puts
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

  // ---- lobby ---------------------------------------------------------------

  const lobbyMsg = (text) => { $('lobby-msg').textContent = text || ''; };

  function constraints() {
    const pick = (id, on) => {
      const el = $(id);
      if (!on || !el) return false;
      if (el.value === 'none') return false;
      return el.value ? { deviceId: { exact: el.value } } : true;
    };
    return { audio: pick('microphone', M.audio), video: pick('camera', M.video) };
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

  async function lobby() {
    if (M.audio || M.video) {
      if (!navigator.mediaDevices) { lobbyMsg(S.err_no_devices); } else {
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
          if ($(id)) $(id).addEventListener('change', preview);
        }
      }
    }
    $('name').focus();
    $('join-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      const name = $('name').value.trim();
      if (!name || name.length > 64) { lobbyMsg(S.err_name); $('name').focus(); return; }
      myName = name;
      $('lobby').hidden = true;
      $('call').hidden = false;
      addTile('self', `${myName} (${S.you})`, local, true);
      updateControls();
      join();
    });
  }

  // ---- call ----------------------------------------------------------------

  const status = (text) => { $('status').textContent = text || ''; };

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
      tile.append(video, caption);
      $('grid').append(tile);
      tiles.set(id, tile);
    }
    tile.querySelector('figcaption').textContent = label;
    const video = tile.querySelector('video');
    if (stream && video.srcObject !== stream) video.srcObject = stream;
    layout();
    return tile;
  }

  function removeTile(id) {
    const tile = tiles.get(id);
    if (tile) { tile.remove(); tiles.delete(id); }
    layout();
  }

  function layout() {
    $('grid').dataset.count = String(tiles.size);
  }

  function label(id) {
    const p = peers.get(id);
    if (!p) return '';
    const flags = [];
    if (p.audio) flags.push('🔇');
    return p.name + (flags.length ? ' ' + flags.join(' ') : '');
  }

  function renderPeople() {
    const ul = $('people');
    ul.textContent = '';
    const me = document.createElement('li');
    me.textContent = `${myName} (${S.you})` + (audioMuted ? ` · ${S.muted}` : '');
    ul.append(me);
    for (const [id, p] of peers) {
      const li = document.createElement('li');
      li.dataset.peer = id;
      li.textContent = p.name + (p.audio ? ` · ${S.muted}` : '');
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
      if (tile) tile.querySelector('figcaption').textContent = label(id);
    }
  }

  function chatLine(from, text, mine) {
    const list = $('messages');
    if (!list) return;
    const li = document.createElement('li');
    if (mine) li.className = 'mine';
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
      mic.textContent = audioMuted ? S.unmute : S.mute;
      mic.setAttribute('aria-pressed', String(audioMuted));
      mic.disabled = !(local && local.getAudioTracks().length);
    }
    const cam = $('cam');
    if (cam) {
      cam.textContent = videoMuted ? S.camera_on : S.camera_off;
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
  }

  function teardown() {
    if (pc) { pc.onconnectionstatechange = null; pc.close(); pc = null; }
    if (ws) { ws.onclose = null; ws.onmessage = null; ws.close(); ws = null; }
    for (const id of [...tiles.keys()]) if (id !== 'self') removeTile(id);
    peers.clear();
  }

  function end(title, text) {
    leaving = true;
    teardown();
    if (local) local.getTracks().forEach((t) => t.stop());
    $('call').hidden = true;
    $('end').hidden = false;
    $('end-title').textContent = title;
    $('end-text').textContent = text || '';
    $('rejoin').focus();
  }

  function lost() {
    if (leaving) return;
    teardown();
    attempt += 1;
    if (attempt > 6) { end(S.err_gone, ''); return; }
    status(S.err_lost);
    const delay = Math.min(8000, 500 * 2 ** (attempt - 1));
    setTimeout(join, delay);
  }

  async function join() {
    if (leaving) return;
    myId = null;
    const socket = new WebSocket(wsUrl);
    ws = socket;
    const conn = new RTCPeerConnection({ bundlePolicy: 'max-bundle' });
    pc = conn;
    let sentTracks = 0;
    if (local) {
      // sendrecv, not sendonly: the SFU may send others' media on these m-lines.
      for (const t of local.getTracks()) {
        conn.addTrack(t, local);
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
      stream.onremovetrack = () => { if (!stream.getTracks().length) removeTile(id); };
    };
    conn.onconnectionstatechange = () => {
      if (conn !== pc) return;
      if (conn.connectionState === 'connected') { attempt = 0; status(''); }
      if (conn.connectionState === 'failed') { status(S.err_media); lost(); }
    };
    socket.onopen = async () => {
      send({ type: 'join', name: myName, token });
    };
    socket.onclose = () => { if (socket === ws) lost(); };
    socket.onmessage = async (ev) => {
      let msg;
      try { msg = JSON.parse(ev.data); } catch { return; }
      try { await handle(msg, conn); } catch (e) { console.warn('signaling', e); }
    };
  }

  async function handle(msg, conn) {
    if (conn !== pc) return;
    switch (msg.type) {
      case 'welcome': {
        myId = msg.id;
        peers.clear();
        for (const p of msg.peers) peers.set(String(p.id), { name: p.name, audio: p.audio_muted, video: p.video_muted });
        renderPeople();
        const offer = await conn.createOffer();
        await conn.setLocalDescription(offer);
        send({ type: 'offer', sdp: conn.localDescription.sdp });
        if (audioMuted || videoMuted) send({ type: 'mute', audio: audioMuted, video: videoMuted });
        break;
      }
      case 'answer':
        await conn.setRemoteDescription({ type: 'answer', sdp: msg.sdp });
        break;
      case 'offer': {
        await conn.setRemoteDescription({ type: 'offer', sdp: msg.sdp });
        const answer = await conn.createAnswer();
        await conn.setLocalDescription(answer);
        send({ type: 'answer', sdp: conn.localDescription.sdp });
        break;
      }
      case 'candidate':
        if (msg.candidate) await conn.addIceCandidate(msg.candidate);
        break;
      case 'peer-joined': {
        const p = msg.peer;
        peers.set(String(p.id), { name: p.name, audio: p.audio_muted, video: p.video_muted });
        notice(S.peer_joined.replace('{name}', p.name));
        renderPeople();
        break;
      }
      case 'peer-left': {
        const id = String(msg.id);
        const p = peers.get(id);
        peers.delete(id);
        removeTile(id);
        if (p) notice(S.peer_left.replace('{name}', p.name));
        renderPeople();
        break;
      }
      case 'mute': {
        const p = peers.get(String(msg.id));
        if (p) { p.audio = msg.audio; p.video = msg.video; renderPeople(); }
        const tile = tiles.get(String(msg.id));
        if (tile) tile.classList.toggle('camera-off', !!msg.video);
        break;
      }
      case 'chat': {
        const p = peers.get(String(msg.from));
        chatLine(p ? p.name : '?', msg.text, false);
        break;
      }
      case 'error':
        switch (msg.code) {
          case 'room-full': end(S.full_title, S.full_text.replace('{n}', M.maxParticipants)); break;
          case 'meeting-ended': end(S.ended_title, S.ended_text); break;
          case 'unauthorized': end(S.not_found_title, S.not_found_text); break;
          case 'not-started': leaving = true; teardown(); location.reload(); break;
          case 'rate-limited': status(S.err_rate); break;
          case 'unavailable': break; // the socket closes next: reconnect with backoff
          default: console.warn('signaling error', msg.code);
        }
        break;
      default:
        break;
    }
  }

  // ---- controls ------------------------------------------------------------

  if ($('mic')) $('mic').addEventListener('click', () => setMute(!audioMuted, videoMuted));
  if ($('cam')) $('cam').addEventListener('click', () => {
    setMute(audioMuted, !videoMuted);
    const self = tiles.get('self');
    if (self) self.classList.toggle('camera-off', videoMuted);
  });
  $('leave').addEventListener('click', () => {
    send({ type: 'leave' });
    end(S.left, '');
  });
  $('rejoin').addEventListener('click', () => location.reload());
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
    get pc() { return pc; },
  };

  lobby();

  // ---- waiting page --------------------------------------------------------

  function waiting() {
    const lang = document.documentElement.lang;
    for (const el of document.querySelectorAll('time[datetime]')) {
      const t = new Date(el.getAttribute('datetime'));
      if (!isNaN(t)) el.textContent = new Intl.DateTimeFormat(lang, { dateStyle: 'full', timeStyle: 'short' }).format(t);
    }
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
