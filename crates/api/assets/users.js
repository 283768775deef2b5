// The admins' account page: each row's role, disable/enable and temporary password call
// /api/users/{id}; the list reloads after a change. Errors show the API's message.
const error = document.getElementById('error');

async function change(row, method, path, body) {
  error.textContent = '';
  let r;
  try {
    r = await fetch('/api/users/' + encodeURIComponent(row.dataset.id) + path, {
      method,
      headers: {'Content-Type': 'application/json'},
      body: JSON.stringify(body),
    });
  } catch (err) {
    error.textContent = 'The server did not answer: ' + err.message;
    return;
  }
  if (r.ok) {
    location.reload();
    return;
  }
  const answer = await r.json().catch(() => ({}));
  error.textContent = row.dataset.email + ': ' +
    ((answer.error && answer.error.message) || r.statusText);
}

const table = document.getElementById('users');
table.addEventListener('change', (e) => {
  if (!e.target.matches('select.role')) return;
  change(e.target.closest('tr'), 'PATCH', '', {role: e.target.value});
});
table.addEventListener('click', (e) => {
  if (!e.target.matches('button.toggle')) return;
  const disabled = e.target.dataset.disabled === 'true';
  change(e.target.closest('tr'), 'PATCH', '', {disabled: !disabled});
});
table.addEventListener('submit', (e) => {
  if (!e.target.matches('form.temporary')) return;
  e.preventDefault();
  const password = new FormData(e.target).get('password');
  change(e.target.closest('tr'), 'POST', '/temporary-password', {password});
});
