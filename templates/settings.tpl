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
  <div class="table-scroll" tabindex="0" role="region" aria-label="Settings table"><table class="settings-table">
    <thead><tr><th>Variable</th><th>Value</th></tr></thead>
    <tbody>
    % for name, value in values:
    <tr><td><code>{{name}}</code></td><td class="setting-value">{{value}}</td></tr>
    % end
    </tbody>
  </table></div>
</section>

<section class="card">
  <h2>Alerts in</h2>
  % if not webhook_on:
  <p class="notice">The webhook is off: set CLAUDEOPS_API_TOKEN to a long random string (for example the output of <code>openssl rand -hex 32</code>) and restart.</p>
  % end
  <p>Monitors call <code>{{webhook_url}}</code> with the header <code>Authorization: Bearer &lt;CLAUDEOPS_API_TOKEN&gt;</code>. A down or firing alert starts a session at tier {{alert_tier}} as soon as no other session runs; up and resolved events cancel a waiting alert.</p>
  <h3>Uptime Kuma</h3>
  <p class="hint">Settings → Notifications → Setup Notification: type Webhook, Post URL above, Request Body "Preset - application/json", Additional Headers:</p>
  <pre class="setup">{"Authorization": "Bearer &lt;CLAUDEOPS_API_TOKEN&gt;"}</pre>
  <h3>Alertmanager</h3>
  <pre class="setup">receivers:
  - name: claude-ops
    webhook_configs:
      - url: {{webhook_url}}
        http_config:
          authorization:
            credentials: &lt;CLAUDEOPS_API_TOKEN&gt;</pre>
  <h3>Anything else (curl)</h3>
  <pre class="setup">curl -X POST {{webhook_url}} \
  -H "Authorization: Bearer $CLAUDEOPS_API_TOKEN" \
  -H "Content-Type: application/json" \
  -d '{"title": "jellyfin", "message": "Jellyfin answers 502"}'</pre>
</section>
