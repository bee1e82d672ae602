<section class="card">
  <h1>Cooldowns</h1>
  <p class="hint">Limits the agent keeps: {{restart_limit}} restarts of a service in 4 hours, {{redeploy_limit}} redeployment in 24 hours.</p>
  % if cooldown_problem:
  <p class="notice">{{cooldown_problem}}</p>
  % elif not services:
  <p class="empty">No services recorded yet.</p>
  % else:
  <div class="table-scroll"><table class="cooldown-table">
    <thead><tr><th>Service</th><th>Status</th><th>Restarts (4 h)</th><th>Redeploys (24 h)</th><th class="wide-only">Last restart</th><th class="wide-only">Healthy streak</th><th class="wide-only">Last check</th></tr></thead>
    <tbody>
    % for service in services:
    <tr>
      <td>{{service.name}}</td>
      <td><span class="status-badge status-{{service.status.lower()}}">{{service.status}}</span></td>
      <td class="{{'limit' if service.restarts_recent >= restart_limit else ''}}">{{service.restarts_recent}} / {{restart_limit}}</td>
      <td class="{{'limit' if service.redeployments_recent >= redeploy_limit else ''}}">{{service.redeployments_recent}} / {{redeploy_limit}}</td>
      % last = service.restarts[-1] if service.restarts else None
      <td class="wide-only">{{!local_time(str(last.get('timestamp'))) if last else '—'}}{{'' if not last or last.get('success', True) else ' (failed)'}}</td>
      <td class="wide-only">{{service.consecutive_healthy}}</td>
      <td class="wide-only">{{!local_time(service.last_checked)}}</td>
    </tr>
    % end
    </tbody>
  </table></div>
  % end
</section>
