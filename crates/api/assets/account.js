// The account page: change the password (POST /api/account/password), sign out everywhere
// (DELETE /api/account/sessions). Errors show the API's message, which names the field.
const error = document.getElementById('error');

async function call(method, url, body) {
  error.textContent = '';
  let r;
  try {
    r = await fetch(url, {
      method,
      headers: body ? {'Content-Type': 'application/json'} : {},
      body: body ? JSON.stringify(body) : undefined,
    });
  } catch (err) {
    error.textContent = 'The server did not answer: ' + err.message;
    return false;
  }
  if (r.ok) return true;
  const answer = await r.json().catch(() => ({}));
  error.textContent = (answer.error && answer.error.message) || r.statusText;
  return false;
}

document.getElementById('change-password').addEventListener('submit', async (e) => {
  e.preventDefault();
  const form = e.target;
  const f = new FormData(form);
  const done = document.getElementById('password-done');
  done.hidden = true;
  const ok = await call('POST', form.action, {
    current_password: f.get('current_password'),
    new_password: f.get('new_password'),
  });
  if (!ok) return;
  form.reset();
  if (form.dataset.then) {
    location.href = form.dataset.then;
  } else {
    done.hidden = false;
  }
});

document.getElementById('sign-out-everywhere').addEventListener('click', async () => {
  if (await call('DELETE', '/api/account/sessions')) location.href = '/login';
});
