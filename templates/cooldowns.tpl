<section id="cooldowns" class="card" hx-get="/cooldowns" hx-trigger="sse:services" hx-select="#cooldowns > *" hx-swap="innerHTML" hx-disinherit="*">
  <h1>Cooldowns</h1>
  <p class="hint">Limits the agent keeps: {{cooldown_rules}}.</p>
  % if cooldown_problem:
  <p class="notice">{{cooldown_problem}}</p>
  % end
  % if not services and not cooldown_problem:
  <p class="empty">No services recorded yet.</p>
  % elif services:
  <div class="table-scroll" tabindex="0" role="region" aria-label="Cooldowns per service"><table class="cooldown-table">
    <thead><tr><th>Service</th><th>Status</th>
    % for limit in cooldown_limits:
    <th>{{limit.heading}}</th>
    % end
    <th class="wide-only">Last restart</th><th class="wide-only">Healthy streak</th><th class="wide-only">Last check</th></tr></thead>
    <tbody>
    % for service in services:
    <tr>
      <td>{{service.name}}</td>
      <td>{{!partial('health_badge', service=service)}}</td>
      % for limit, count in service.recent:
      <td>{{!partial('cooldown_count', limit=limit, count=count)}}</td>
      % end
      <td class="wide-only">{{!local_time(service.last_restart)}}{{' (failed)' if service.last_restart_failed else ''}}</td>
      <td class="wide-only">{{service.consecutive_healthy}}</td>
      <td class="wide-only">{{!local_time(service.last_checked)}}</td>
    </tr>
    % end
    </tbody>
  </table></div>
  % end
</section>
