<section id="dashboard-services" class="card" hx-get="/dashboard/services" hx-trigger="sse:services" hx-select="#dashboard-services > *" hx-swap="innerHTML" hx-disinherit="*">
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
