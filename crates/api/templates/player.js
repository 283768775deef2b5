// The lesson player: resumes where the viewer stopped, saves the position every 10 s and when
// the page is hidden, and reports what the viewer experienced (load time, resume time and
// success, position mismatch, buffering) to /api/telemetry/player. Every request it makes
// carries the page's `traceparent` (rendered from the page response's own trace, the value of
// its `traceresponse` header), so the player's events land in the trace of the page load.
(() => {
  'use strict';
  const SAVE_EVERY_MS = 10000;
  // A resume that lands further than this from the saved position counts as failed (seed
  // 001's `video.resume_position_mismatch`).
  const RESUME_TOLERANCE_S = 0.5;
  const MAX_BATCH = 100;

  const data = JSON.parse(document.getElementById('page-data').textContent);
  const meta = document.querySelector('meta[name="traceparent"]');
  const traceparent = meta && /^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$/.test(meta.content) ? meta.content : null;
  const video = document.getElementById('video');
  const $ = (id) => document.getElementById(id);
  const dataset = document.body.dataset;
  if (traceparent) $('trace-id').textContent = traceparent.split('-')[1];

  const pending = [];      // player events not yet sent
  let resumeDone = false;  // no position is saved before the resume settled: it would overwrite
  let watchTime = 0;       // seconds actually played (seeks do not count)
  let lastPos = 0;
  let lastSavedPos = null;
  let bufferingSince = null;
  let hasPlayed = false;   // a stall before the first frame is start-up, not buffering
  let bufferingEvents = 0;
  let sentEvents = 0;

  function headers() {
    const h = {'Content-Type': 'application/json'};
    if (traceparent) h.traceparent = traceparent;
    return h;
  }
  function showError(msg) { $('error').textContent = msg; }
  function round3(n) { return Math.round(n * 1000) / 1000; }

  function push(event) {
    pending.push(event);
    if (pending.length > 10 * MAX_BATCH) pending.splice(0, pending.length - 10 * MAX_BATCH);
  }

  // Sends the pending events. A network failure puts them back for the next flush; a 4xx
  // drops them (the server named the problem, retrying cannot fix it).
  async function flush() {
    if (!pending.length) return;
    const events = pending.splice(0, MAX_BATCH);
    try {
      const r = await fetch('/api/telemetry/player', {
        method: 'POST', headers: headers(), credentials: 'same-origin',
        body: JSON.stringify({videoId: data.videoId, events}),
      });
      if (r.ok) {
        sentEvents += events.length;
        dataset.telemetrySent = String(sentEvents);
      } else if (r.status >= 500) {
        pending.unshift(...events);
      } else {
        const body = await r.json().catch(() => ({}));
        console.warn('player telemetry refused:', body.error && body.error.message);
      }
    } catch (e) {
      pending.unshift(...events);
    }
    if (pending.length) setTimeout(flush, 2000);
  }

  async function saveProgress() {
    if (!resumeDone || !isFinite(video.duration)) return;
    const pos = round3(video.currentTime);
    if (pos === lastSavedPos) return;
    try {
      const r = await fetch('/api/progress', {
        method: 'POST', headers: headers(), credentials: 'same-origin',
        body: JSON.stringify({videoId: data.videoId, positionSeconds: pos, watchTime: round3(watchTime)}),
      });
      if (r.ok) {
        lastSavedPos = pos;
        $('saved').textContent = pos.toFixed(1) + ' s';
        dataset.savedPosition = String(pos);
        dataset.saves = String((Number(dataset.saves) || 0) + 1);
      } else if (r.status === 401) {
        showError('Your session ended: sign in again to keep your place.');
      }
    } catch (e) { /* offline: the next tick or the page-hide beacon saves it */ }
  }

  // On page hide only a beacon is sure to leave; it cannot set headers, so the trace context
  // travels in the body (`traceparent`), and the position is saved through the telemetry
  // route's `video.page_hidden` event.
  let hiddenSent = false;
  function onHide() {
    if (hiddenSent) return;
    hiddenSent = true;
    const events = pending.splice(0, MAX_BATCH - 1);
    if (resumeDone && isFinite(video.duration)) {
      events.push({name: 'video.page_hidden', finalPosition: round3(video.currentTime), watchTime: round3(watchTime)});
    }
    if (!events.length) return;
    const body = {videoId: data.videoId, events};
    if (traceparent) body.traceparent = traceparent;
    if (!navigator.sendBeacon('/api/telemetry/player', JSON.stringify(body))) pending.unshift(...events);
  }
  document.addEventListener('visibilitychange', () => {
    if (document.visibilityState === 'hidden') onHide(); else hiddenSent = false;
  });
  window.addEventListener('pagehide', onHide);

  video.addEventListener('timeupdate', () => {
    const t = video.currentTime;
    const d = t - lastPos;
    if (!video.seeking && d > 0 && d < 2) watchTime += d;
    lastPos = t;
  });
  video.addEventListener('waiting', () => {
    // A wait caused by a seek is the seek's, not buffering.
    if (hasPlayed && !video.seeking && bufferingSince === null) bufferingSince = performance.now();
  });
  video.addEventListener('playing', () => {
    $('status').textContent = 'playing';
    dataset.state = 'playing';
    hasPlayed = true;
    if (bufferingSince !== null) {
      push({name: 'video.buffering', durationMs: Math.round(performance.now() - bufferingSince)});
      bufferingSince = null;
      dataset.bufferingEvents = String(++bufferingEvents);
    }
  });
  video.addEventListener('pause', () => { $('status').textContent = 'paused'; dataset.state = 'paused'; });
  video.addEventListener('error', () => {
    const e = video.error;
    showError('The video could not be played' + (e ? ' (' + (e.message || 'code ' + e.code) + ')' : ''));
    dataset.state = 'error';
  });

  const saved = fetch('/api/progress/' + encodeURIComponent(data.videoId), {headers: headers(), credentials: 'same-origin'})
    .then((r) => (r.ok ? r.json() : null))
    .catch(() => null);

  video.addEventListener('loadedmetadata', async () => {
    // Milliseconds since the navigation started: what the viewer waited for.
    push({name: 'video.loaded', loadTimeMs: Math.round(performance.now())});
    $('status').textContent = 'ready';
    const progress = await saved;
    const expected = progress ? progress.positionSeconds : 0;
    if (expected > 0 && !(progress && progress.completed) && expected < video.duration - 1) {
      const started = performance.now();
      video.addEventListener('seeked', () => {
        const actual = video.currentTime;
        const success = Math.abs(actual - expected) <= RESUME_TOLERANCE_S;
        push({name: 'video.resume_attempt', success, expected: round3(expected), actual: round3(actual),
              resumeTimeMs: Math.round(performance.now() - started)});
        if (!success) push({name: 'video.resume_position_mismatch', expected: round3(expected), actual: round3(actual)});
        lastPos = actual;
        lastSavedPos = round3(expected);
        $('resumed').textContent = actual.toFixed(1) + ' s';
        dataset.resumedAt = String(actual);
        dataset.resumeSuccess = String(success);
        resumeDone = true;
        flush();
      }, {once: true});
      video.currentTime = expected;
    } else {
      dataset.resumedAt = '0';
      $('resumed').textContent = 'from the start';
      resumeDone = true;
      flush();
    }
  });

  setInterval(() => { saveProgress(); flush(); }, SAVE_EVERY_MS);
  video.src = data.streamUrl;
})();
