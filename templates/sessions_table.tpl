% if newest is None:
<div id="sessions" hx-get="{{this_page}}" hx-trigger="sse:session" hx-select="#sessions > *" hx-swap="innerHTML" hx-disinherit="*">
% else:
<div id="sessions">
% end
<section class="card">
  <div class="card-head"><h1>Sessions</h1>
  <form class="history-filters" method="get" action="/sessions" hx-get="/sessions" hx-trigger="change, submit" hx-target="#sessions" hx-swap="outerHTML" hx-push-url="true">
    <label><span>Status</span>
      <select name="status">
        <option value="">any</option>
        % for value, label in status_choices:
        <option value="{{value}}"{{!' selected' if value == filters['status'] else ''}}>{{label}}</option>
        % end
      </select>
    </label>
    <label><span>Trigger</span>
      <select name="trigger">
        <option value="">any</option>
        % for value in trigger_choices:
        <option value="{{value}}"{{!' selected' if value == filters['trigger'] else ''}}>{{value}}</option>
        % end
      </select>
    </label>
    <button type="submit" class="button-quiet">Filter</button>
  </form>
  </div>
  % if not sessions and (filters['status'] or filters['trigger']):
  <p class="empty">No session matches these filters. <a href="/sessions">All sessions</a></p>
  % elif not sessions:
  <p class="empty">No sessions yet. A scheduled one runs every interval; start one from the dashboard's Run now form.</p>
  % else:
  <div class="table-scroll" tabindex="0" role="region" aria-label="Sessions table"><table class="sessions-table">
    <thead><tr><th>Session</th><th>Started</th><th>Trigger</th><th>Status</th><th class="wide-only">Model</th><th class="wide-only">Duration</th><th class="wide-only">Cost</th><th class="wide-only">Turns</th></tr></thead>
    <tbody>
    % for session in sessions:
    {{!partial('session_row', session=session)}}
    % end
    </tbody>
  </table></div>
  % end
  <nav class="pager" aria-label="Pages">
    % if newest:
    <a href="{{newest}}">Newest</a>
    % end
    % if older:
    <a href="{{older}}">Older</a>
    % end
  </nav>
</section>
</div>
