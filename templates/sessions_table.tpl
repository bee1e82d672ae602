% if before_id is None:
<div id="sessions" hx-get="/sessions" hx-trigger="sse:session" hx-select="#sessions > *" hx-swap="innerHTML" hx-disinherit="*">
% else:
<div id="sessions">
% end
<section class="card">
  <h1>Sessions</h1>
  % if not sessions:
  <p class="empty">No sessions yet. A scheduled one runs every interval; start one from the dashboard's Run now form.</p>
  % else:
  <div class="table-scroll"><table class="sessions-table">
    <thead><tr><th>#</th><th>Started</th><th>Trigger</th><th>Status</th><th class="wide-only">Model</th><th>Duration</th><th class="wide-only">Cost</th><th class="wide-only">Turns</th></tr></thead>
    <tbody>
    % for session in sessions:
    {{!partial('session_row', session=session)}}
    % end
    </tbody>
  </table></div>
  % end
  <nav class="pager">
    % if before_id is not None:
    <a href="/sessions">Newest</a>
    % end
    % if older_than is not None:
    <a href="/sessions?before={{older_than}}">Older</a>
    % end
  </nav>
</section>
</div>
