<section class="card services" id="services">
  <div class="card-head"><h2>Services</h2><a href="/cooldowns">Cooldowns</a></div>
  % if cooldown_problem:
  <p class="notice">{{cooldown_problem}}</p>
  % end
  % if not glance.tiles and not cooldown_problem:
  <p class="empty">No services recorded yet. Each session checks the homelab and records every service it finds in cooldown.json; they show here after the first session.</p>
  % elif glance.tiles:
  <div class="service-grid">
    % for service, stale in glance.tiles:
    <article class="service-tile health-{{service.health}}">
      <h3>{{service.name}}</h3>
      <p class="tile-badges">{{!partial('health_badge', service=service)}}
      % if stale:
      <span class="stale-badge" title="Not checked within two intervals ({{stale_after}})">stale</span>
      % end
      </p>
      <dl>
        % for limit, count in service.recent:
        <div><dt>{{limit.heading}}</dt><dd>{{!partial('cooldown_count', limit=limit, count=count)}}</dd></div>
        % end
        <div><dt>Last check</dt><dd>{{!ago_time(service.last_checked)}}</dd></div>
      </dl>
    </article>
    % end
  </div>
  % end
</section>
