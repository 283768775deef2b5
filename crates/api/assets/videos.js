// The lesson list (templates/videos.html, rendered by the server). This script:
// - follows status changes over the WebSocket (/api/ws): a card goes uploaded → processing →
//   ready (its thumbnail appears) or failed, live;
// - for admins (the server renders their controls only for them), uploads through the form
//   with a progress bar (XHR upload progress), then sets the description (PATCH), and runs each
//   card's edit, delete (after a confirm) and reprocess, with the existing API routes.
// Text goes in with textContent and .value only: titles are user input.
(() => {
  const list = document.getElementById('videos');
  const error = document.getElementById('error');
  // The latest status the socket announced per video, so a card added after its event (an
  // upload answered after the worker's first change) still shows it.
  const statuses = new Map();

  function cards(id) {
    return document.querySelectorAll('.video-card[data-video-id="' + CSS.escape(id) + '"]');
  }

  function count() {
    document.body.dataset.loaded = String(list.querySelectorAll('.video-card').length);
  }

  async function apiError(r) {
    const body = await r.json().catch(() => ({}));
    return (body.error && body.error.message) || r.statusText || String(r.status);
  }

  function setStatus(card, status) {
    const id = card.dataset.videoId;
    card.dataset.status = status;
    card.classList.remove('uploaded', 'processing', 'ready', 'failed');
    card.classList.add(status);
    card.querySelector('.status').textContent = status === 'ready' ? '' : status;
    const reprocess = card.querySelector('.reprocess');
    if (reprocess) reprocess.hidden = status !== 'failed';
    const thumb = card.querySelector('.thumb');
    if (status === 'ready' && thumb && thumb.tagName !== 'IMG') {
      const img = document.createElement('img');
      img.className = 'thumb';
      img.alt = 'Thumbnail of ' + card.querySelector('.title').textContent;
      img.src = '/api/videos/' + encodeURIComponent(id) + '/thumbnail';
      thumb.replaceWith(img);
    }
  }

  function fmtDuration(s) {
    s = Math.round(s);
    const h = Math.floor(s / 3600), m = Math.floor(s / 60) % 60, sec = String(s % 60).padStart(2, '0');
    return h > 0 ? h + ':' + String(m).padStart(2, '0') + ':' + sec : m + ':' + sec;
  }

  function onStatus(id, status) {
    statuses.set(id, status);
    const changed = cards(id);
    changed.forEach((card) => setStatus(card, status));
    // A card made for an upload learns its duration (the worker's probe) once it is ready.
    const missing = [...changed].filter((c) => !c.querySelector('.duration').textContent);
    if (status === 'ready' && missing.length) {
      fetch('/api/videos/' + encodeURIComponent(id)).then((r) => r.ok ? r.json() : null).then((v) => {
        if (v && v.duration_seconds != null) {
          missing.forEach((c) => { c.querySelector('.duration').textContent = fmtDuration(v.duration_seconds); });
        }
      }).catch(() => {});
    }
  }

  // The socket reconnects after a close (the server closes every hour, and on shutdown).
  function connect(delay) {
    const ws = new WebSocket((location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/api/ws');
    ws.addEventListener('open', () => { document.body.dataset.live = 'true'; delay = 1000; });
    ws.addEventListener('message', (e) => {
      let m;
      try { m = JSON.parse(e.data); } catch (_) { return; }
      if (m.type === 'video_status_changed') onStatus(m.videoId, m.status);
      // Missed messages: ask the API for the cards still changing.
      if (m.type === 'resync' || m.type === 'hello') refreshPending();
    });
    ws.addEventListener('close', () => {
      document.body.dataset.live = 'false';
      setTimeout(() => connect(Math.min(delay * 2, 30000)), delay);
    });
  }

  // Reads the current status of every card not settled yet (after a (re)connect).
  function refreshPending() {
    document.querySelectorAll('.video-card.uploaded, .video-card.processing').forEach(async (card) => {
      const r = await fetch('/api/videos/' + encodeURIComponent(card.dataset.videoId)).catch(() => null);
      if (r && r.ok) {
        const v = await r.json();
        if (v.status !== card.dataset.status) onStatus(v.id, v.status);
      }
    });
  }

  // ---- admins: each card's controls -----------------------------------------------------

  function fail(card, message) {
    const p = card.querySelector('.admin-error');
    if (p) p.textContent = message;
  }

  async function save(card, form) {
    fail(card, '');
    const body = {title: form.elements.title.value, description: form.elements.description.value};
    const r = await fetch('/api/videos/' + encodeURIComponent(card.dataset.videoId), {
      method: 'PATCH', headers: {'content-type': 'application/json'}, body: JSON.stringify(body),
    }).catch((e) => ({ok: false, statusText: e.message, json: async () => ({})}));
    if (!r.ok) { fail(card, 'Not saved: ' + await apiError(r)); return; }
    const v = await r.json();
    cards(v.id).forEach((c) => {
      c.querySelector('.title').textContent = v.title;
      c.querySelector('.description').textContent = v.description;
    });
    form.elements.title.value = v.title;
    form.elements.description.value = v.description;
    card.querySelector('details.edit').open = false;
    card.dataset.saved = String(Number(card.dataset.saved || 0) + 1);
  }

  async function remove(card) {
    const title = card.querySelector('.title').textContent;
    if (!confirm('Delete the lesson “' + title + '”? Its video, thumbnail and everyone\'s progress go too.')) return;
    fail(card, '');
    const id = card.dataset.videoId;
    const r = await fetch('/api/videos/' + encodeURIComponent(id), {method: 'DELETE'})
      .catch((e) => ({ok: false, statusText: e.message, json: async () => ({})}));
    if (!r.ok) { fail(card, 'Not deleted: ' + await apiError(r)); return; }
    cards(id).forEach((c) => c.remove());
    count();
  }

  async function reprocess(card) {
    fail(card, '');
    const id = card.dataset.videoId;
    statuses.delete(id);
    const r = await fetch('/api/videos/' + encodeURIComponent(id) + '/reprocess', {method: 'POST'})
      .catch((e) => ({ok: false, statusText: e.message, json: async () => ({})}));
    if (!r.ok) { fail(card, 'Not reprocessed: ' + await apiError(r)); return; }
    const v = await r.json();
    // The worker may have moved on (and said so on the socket) before this answer arrived.
    onStatus(id, statuses.get(id) || v.status);
    card.dataset.reprocessed = String(Number(card.dataset.reprocessed || 0) + 1);
  }

  // One listener for every card, present and future.
  document.addEventListener('submit', (e) => {
    if (!e.target.classList.contains('edit-form')) return;
    e.preventDefault();
    save(e.target.closest('.video-card'), e.target);
  });
  document.addEventListener('click', (e) => {
    const button = e.target.closest('button.delete, button.reprocess');
    if (!button) return;
    const card = button.closest('.video-card');
    if (button.classList.contains('delete')) remove(card); else reprocess(card);
  });

  // ---- admins: the upload form -----------------------------------------------------------

  // A card for a new lesson, copied from the server's empty one.
  function addCard(v) {
    const card = document.getElementById('new-card').content.firstElementChild.cloneNode(true);
    card.dataset.videoId = v.id;
    card.querySelector('a.open').href = '/player/' + encodeURIComponent(v.id);
    card.querySelector('.title').textContent = v.title;
    card.querySelector('.description').textContent = v.description;
    const form = card.querySelector('.edit-form');
    form.elements.title.value = v.title;
    form.elements.description.value = v.description;
    list.prepend(card);
    const empty = document.getElementById('empty');
    if (empty) empty.hidden = true;
    setStatus(card, statuses.get(v.id) || v.status);
    count();
  }

  function upload(form) {
    const bar = document.getElementById('upload-progress');
    const state = document.getElementById('upload-state');
    const submit = document.getElementById('upload-submit');
    const file = form.elements.file.files[0];
    if (!file) return;
    const data = new FormData();
    const title = form.elements.title.value.trim();
    if (title) data.append('title', title);
    data.append('file', file, file.name);
    const description = form.elements.description.value.trim();
    const xhr = new XMLHttpRequest();
    xhr.open('POST', '/api/upload');
    xhr.responseType = 'json';
    xhr.upload.addEventListener('progress', (e) => {
      if (!e.lengthComputable) return;
      bar.value = Math.round((e.loaded / e.total) * 100);
      state.textContent = 'Uploading… ' + bar.value + ' %';
      // What the last progress event said (the browser test reads it).
      document.body.dataset.uploadProgress = String(bar.value);
    });
    xhr.addEventListener('load', async () => {
      submit.disabled = false;
      const body = xhr.response || {};
      if (xhr.status !== 201) {
        state.textContent = 'Upload failed: ' + ((body.error && body.error.message) || xhr.statusText || xhr.status);
        document.body.dataset.upload = 'failed';
        return;
      }
      let v = body;
      let said = 'Uploaded “' + v.title + '”: it is being processed.';
      // The upload takes a file and a title; the description is the lesson's edit.
      if (description) {
        const r = await fetch('/api/videos/' + encodeURIComponent(v.id), {
          method: 'PATCH', headers: {'content-type': 'application/json'}, body: JSON.stringify({description}),
        }).catch(() => null);
        if (r && r.ok) v = await r.json();
        else said = 'Uploaded “' + v.title + '”, but the description was not saved: edit the lesson to add it.';
      }
      bar.value = 100;
      state.textContent = said;
      form.reset();
      addCard(v);
      document.body.dataset.upload = v.id;
    });
    xhr.addEventListener('error', () => {
      submit.disabled = false;
      state.textContent = 'Upload failed: the connection was lost.';
      document.body.dataset.upload = 'failed';
    });
    submit.disabled = true;
    bar.hidden = false;
    bar.value = 0;
    state.textContent = 'Uploading…';
    delete document.body.dataset.upload;
    delete document.body.dataset.uploadProgress;
    xhr.send(data);
  }

  const uploadForm = document.getElementById('upload');
  if (uploadForm) {
    uploadForm.addEventListener('submit', (e) => { e.preventDefault(); upload(uploadForm); });
  }

  // ---- everyone ---------------------------------------------------------------------------

  document.getElementById('sign-out').addEventListener('click', async () => {
    await fetch('/api/auth/logout', {method: 'POST'}).catch(() => {});
    location.href = '/login';
  });
  if (error) error.textContent = '';
  count();
  connect(1000);
})();
