"""The admin web page: one self-contained HTML document served at ``/admin/``.

It polls ``/admin/hosts`` and ``/admin/consumers`` every two seconds (the browser resends the Basic
credentials it was challenged for) and posts the admin actions. No build step, no external assets.
"""

from __future__ import annotations

__all__ = ["ADMIN_PAGE"]

ADMIN_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>atstack relay admin</title>
<style>
 body { font: 14px system-ui, sans-serif; margin: 2em; color: #222; }
 h1 { font-size: 1.4em; } h2 { font-size: 1.1em; margin-top: 2em; }
 table { border-collapse: collapse; width: 100%; }
 th, td { text-align: left; padding: .35em .6em; border-bottom: 1px solid #ddd; }
 th { background: #f4f4f4; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
 .active { color: #176f2c; } .offline, .banned { color: #b00020; } .idle, .throttled { color: #a36200; }
 form { display: inline-block; margin: .3em 1em .3em 0; } input { font: inherit; padding: .2em .4em; }
 #msg { margin-top: 1em; min-height: 1.2em; color: #555; }
</style>
</head>
<body>
<h1>atstack relay</h1>
<div id="summary"></div>
<h2>Hosts</h2>
<table>
 <thead><tr><th>host</th><th>status</th><th>connected</th><th class="num">events/s</th>
 <th class="num">events</th><th class="num">last seq</th><th class="num">accounts</th>
 <th class="num">account limit</th><th class="num">rate limit</th><th></th></tr></thead>
 <tbody id="hosts"></tbody>
</table>
<h2>Actions</h2>
<form data-action="hosts/requestCrawl"><input name="hostname" placeholder="hostname" required>
 <button>crawl</button></form>
<form data-action="hosts/ban"><input name="hostname" placeholder="hostname" required>
 <button>ban host</button></form>
<form data-action="hosts/unban"><input name="hostname" placeholder="hostname" required>
 <button>unban host</button></form><br>
<form data-action="hosts/limits"><input name="hostname" placeholder="hostname" required>
 <input name="accountLimit" placeholder="account limit" size="12">
 <input name="eventsPerSecond" placeholder="events/s" size="10"> <button>set limits</button></form><br>
<form data-action="repos/takedown"><input name="did" placeholder="did:plc:…" required size="40">
 <button>take down repo</button></form>
<form data-action="repos/restore"><input name="did" placeholder="did:plc:…" required size="40">
 <button>restore repo</button></form>
<div id="msg"></div>
<script>
const esc = (s) => String(s ?? '').replace(/[&<>"]/g, (c) => ({'&':'&amp;','<':'&lt;','>':'&gt;','"':'&quot;'}[c]));
const num = (n) => n === null || n === undefined ? '—' : Number(n).toLocaleString();
async function refresh() {
  try {
    const [h, c] = await Promise.all([fetch('hosts'), fetch('consumers')]);
    const hosts = (await h.json()).hosts, cons = await c.json();
    document.getElementById('summary').textContent =
      `${hosts.length} hosts · ${cons.subscribers} firehose consumers · last seq ${num(cons.lastSeq)}`;
    document.getElementById('hosts').innerHTML = hosts.map((x) => `<tr>
      <td>${esc(x.hostname)}</td><td class="${esc(x.status)}">${esc(x.status)}</td>
      <td>${x.connected ? 'yes' : 'no'}</td><td class="num">${num(x.eventsPerSecond)}</td>
      <td class="num">${num(x.eventsReceived)}</td><td class="num">${num(x.seq)}</td>
      <td class="num">${num(x.accountCount)}</td><td class="num">${num(x.accountLimit)}</td>
      <td class="num">${num(x.eventsPerSecondLimit)}</td>
      <td>${x.status === 'banned'
        ? `<button onclick="act('hosts/unban',{hostname:'${esc(x.hostname)}'})">unban</button>`
        : `<button onclick="act('hosts/ban',{hostname:'${esc(x.hostname)}'})">ban</button>`}</td></tr>`).join('');
  } catch (e) { document.getElementById('msg').textContent = 'refresh failed: ' + e; }
}
async function act(path, body) {
  const r = await fetch(path, {method: 'POST', headers: {'content-type': 'application/json'},
                               body: JSON.stringify(body)});
  const text = await r.text();
  document.getElementById('msg').textContent = `${path}: ${r.status} ${text.slice(0, 300)}`;
  refresh();
}
for (const form of document.querySelectorAll('form')) {
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const body = {};
    for (const [k, v] of new FormData(form)) {
      if (v === '') continue;
      body[k] = (k === 'accountLimit' || k === 'eventsPerSecond') ? Number(v) : v;
    }
    act(form.dataset.action, body);
  });
}
refresh();
setInterval(refresh, 2000);
</script>
</body>
</html>
"""
