// The lesson list: pages through GET /api/videos with the session cookie and builds a card per
// lesson with DOM calls only (titles are user input).
(() => {
  const list = document.getElementById('videos');
  const more = document.getElementById('more');
  const error = document.getElementById('error');
  let next = null;

  function fmtDuration(s) {
    if (s == null) return '';
    s = Math.round(s);
    return Math.floor(s / 60) + ':' + String(s % 60).padStart(2, '0');
  }

  // Built with DOM calls and textContent only: titles are user input.
  function card(v) {
    const ready = v.status === 'ready';
    const a = document.createElement('a');
    a.className = 'video-card' + (ready ? '' : ' not-ready');
    a.dataset.videoId = v.id;
    a.href = '/player/' + encodeURIComponent(v.id);
    if (v.thumbnail_url) {
      const img = document.createElement('img');
      img.className = 'thumb';
      img.alt = 'Thumbnail of ' + v.title;
      img.loading = 'lazy';
      img.src = v.thumbnail_url;
      a.append(img);
    } else {
      const ph = document.createElement('div');
      ph.className = 'thumb';
      a.append(ph);
    }
    const meta = document.createElement('div');
    meta.className = 'meta';
    const title = document.createElement('div');
    title.className = 'title';
    title.textContent = v.title;
    const sub = document.createElement('div');
    sub.className = 'muted';
    sub.textContent = [fmtDuration(v.duration_seconds), ready ? '' : v.status].filter(Boolean).join(' · ');
    meta.append(title, sub);
    if (v.description) {
      const description = document.createElement('div');
      description.className = 'description muted';
      description.textContent = v.description;
      meta.append(description);
    }
    a.append(meta);
    return a;
  }

  async function load() {
    error.textContent = '';
    const url = '/api/videos?limit=48' + (next ? '&cursor=' + encodeURIComponent(next) : '');
    const r = await fetch(url).catch((e) => ({ok: false, statusText: e.message}));
    if (r.status === 401) { location.href = '/login?next=/videos'; return; }
    if (!r.ok) {
      const body = r.json ? await r.json().catch(() => ({})) : {};
      error.textContent = 'Could not list the lessons: ' + ((body.error && body.error.message) || r.statusText);
      return;
    }
    const page = await r.json();
    page.videos.forEach((v) => list.append(card(v)));
    next = page.next;
    more.hidden = !next;
    document.getElementById('empty').hidden = list.children.length > 0;
    document.body.dataset.loaded = String(list.children.length);
  }

  more.addEventListener('click', load);
  document.getElementById('sign-out').addEventListener('click', async () => {
    await fetch('/api/auth/logout', {method: 'POST'}).catch(() => {});
    location.href = '/login';
  });
  fetch('/api/auth/session').then((r) => r.ok ? r.json() : null).then((s) => {
    if (s && s.user) document.getElementById('who').textContent = s.user.email;
  }).catch(() => {});
  load();
})();
