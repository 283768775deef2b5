// The sign-in form (and the sign-up form, which posts the same fields to /api/auth/register):
// posts its fields as JSON to its `action`, then goes where its `data-next` says. The server wrote that target after checking it is a path of this site
// (`SafeNext`); `?next=` itself is never read here, so no crafted URL picks where a signed-in
// user lands. An account with a temporary password goes to /account to choose its own first.
document.querySelector('form[data-credentials]').addEventListener('submit', async (e) => {
  e.preventDefault();
  const form = e.target;
  const f = new FormData(form);
  const error = document.getElementById('error');
  error.textContent = '';
  let r;
  try {
    r = await fetch(form.action, {
      method: 'POST',
      headers: {'Content-Type': 'application/json'},
      body: JSON.stringify({email: f.get('email'), password: f.get('password')}),
    });
  } catch (err) {
    error.textContent = 'The server did not answer: ' + err.message;
    return;
  }
  if (r.ok) {
    const body = await r.json().catch(() => ({}));
    const mustChange = body.user && body.user.must_change_password;
    location.href = mustChange ? '/account' : form.dataset.next || '/videos';
  } else {
    const body = await r.json().catch(() => ({}));
    error.textContent = (body.error && body.error.message) || r.statusText;
  }
});
