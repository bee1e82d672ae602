<section class="card">
  <h1>Settings</h1>
  <p class="hint">In effect now; change them with the environment variables (or flags) and restart.</p>
  <dl class="meta settings">
    <dt>Claude Code CLI</dt><dd>{{cli_version}}</dd>
  </dl>
</section>

<section class="card">
  <h2>Notifications</h2>
  % if not dashboard_url:
  <p class="notice">CLAUDEOPS_DASHBOARD_URL is unset: notifications cannot link to the session. Set it to this dashboard's address as you open it, for example http://pi.local:8080.</p>
  % end
  % if targets:
  <p>Targets: {{', '.join(targets)}}.</p>
  <form method="post" action="/settings/test-notification" hx-post="/settings/test-notification" hx-target="#test-result" hx-swap="innerHTML" hx-disabled-elt="find button">
    <div class="trigger-actions">
      <button type="submit">Send a test notification</button>
      <div id="test-result" aria-live="polite"></div>
    </div>
  </form>
  % else:
  <p class="empty">No targets: set CLAUDEOPS_APPRISE_URLS to one or more Apprise URLs (ntfy://, tgram://, discord://, mailto://, …) to be told when a session fails or a service goes down.</p>
  % end
</section>

<section class="card">
  <h2>All settings</h2>
  <div class="table-scroll"><table class="settings-table">
    <thead><tr><th>Variable</th><th>Value</th></tr></thead>
    <tbody>
    % for name, value in values:
    <tr><td><code>{{name}}</code></td><td class="setting-value">{{value}}</td></tr>
    % end
    </tbody>
  </table></div>
</section>
