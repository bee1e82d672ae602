<div id="dashboard-sessions" hx-get="/dashboard/sessions" hx-trigger="sse:session" hx-select="#dashboard-sessions > *" hx-swap="innerHTML" hx-disinherit="*">
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
    <span class="latest-meta">{{!latest.started}} · {{!latest.duration}} · {{latest.cost}}</span>
    % if latest.summary:
    <span class="latest-summary">{{latest.summary}}</span>
    % end
  </a>
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
</div>
