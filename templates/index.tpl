% for warning in warnings:
<div class="banner banner-warn" role="alert">{{warning}}</div>
% end
% if dry_run:
<div class="banner banner-info">Dry run: sessions are told to observe and report, and change nothing.</div>
% end
<section class="card">
  <div class="card-head"><h2>Services</h2><a href="/cooldowns">Cooldowns</a></div>
  % if cooldown_problem:
  <p class="notice">{{cooldown_problem}}</p>
  % end
  % if not services and not cooldown_problem:
  <p class="empty">No services recorded yet. Each session checks the homelab and records every service it finds in cooldown.json; they show here after the first session.</p>
  % elif services:
  <div class="service-grid">
    % for service in services:
    <article class="service-tile health-{{service.health}}">
      <h3>{{service.name}}</h3>
      {{!partial('health_badge', service=service)}}
      <dl>
        % for limit, count in service.recent:
        <dt>{{limit.heading}}</dt><dd>{{!partial('cooldown_count', limit=limit, count=count)}}</dd>
        % end
        <dt>Last check</dt><dd>{{!local_time(service.last_checked)}}</dd>
      </dl>
    </article>
    % end
  </div>
  % end
</section>

<section class="card">
  <h2>Run now</h2>
  <form class="trigger-form" method="post" action="/sessions/trigger" hx-post="/sessions/trigger" hx-target="#trigger-result" hx-swap="innerHTML" hx-disabled-elt="find button">
    <label for="prompt" class="visually-hidden">Prompt</label>
    <textarea id="prompt" name="prompt" rows="3" placeholder="Describe what you want Claude to check or fix..."></textarea>
    <div class="trigger-actions">
      {{!partial('tier_select', selected=1)}}
      <button type="submit">Run Now</button>
      <div id="trigger-result" aria-live="polite"></div>
    </div>
  </form>
</section>

<section class="card">
  <div class="card-head"><h2>Latest session</h2><a href="/sessions">All sessions</a></div>
  % if latest is None:
  <p class="empty">No session yet.</p>
  % else:
  <a class="latest" href="/sessions/{{latest.id}}">
    <span class="latest-title">#{{latest.id}}
      {{!partial('trigger_badge', session=latest)}}
      {{!partial('status_badge', session=latest)}}
    </span>
    <span class="latest-meta">{{!latest.started}} · {{latest.duration}} · {{latest.cost}}</span>
  </a>
  % if latest.response_html:
  <div class="response-fold" tabindex="0" role="region" aria-label="Response of session {{latest.id}}">{{!partial('response', session=latest)}}</div>
  % else:
  <p class="latest-summary">{{latest.summary}}</p>
  % end
  % end
</section>

<section class="card next-run">
  <h2>Next scheduled run</h2>
  % if next_run_at is not None:
  <p>{{!local_time(next_run_at)}} <span class="hint">· every {{interval}} after the last one ends</span></p>
  % elif running_trigger == 'scheduled':
  <p>{{interval}} after the running session ends.</p>
  % else:
  <p>Right after the running session ends.</p>
  % end
</section>
