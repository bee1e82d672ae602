<div id="session-summary">
<section class="card">
  <div class="card-head">
    <h1>Session #{{session['id']}}</h1>
    <span><span class="trigger-badge trigger-badge-{{session['trigger']}}">{{session['trigger']}}</span>
    <span class="status-badge status-{{session['status']}}">{{session['status']}}</span></span>
  </div>
  <dl class="meta">
    <dt>Trigger</dt><dd>{{session['trigger']}}</dd>
    <dt>Status</dt><dd>{{session['status']}}</dd>
    <dt>Model</dt><dd>{{session['model']}}</dd>
    <dt>Prompt</dt><dd>{{session['prompt_file'] or '—'}}</dd>
    <dt>Started</dt><dd>{{!local_time(session['started_at'])}}</dd>
    <dt>Ended</dt><dd>{{!local_time(session['ended_at'])}}</dd>
    <dt>Duration</dt><dd>{{duration(session)}}</dd>
    <dt>Cost</dt><dd>{{cost(session)}}</dd>
    <dt>Turns</dt><dd>{{'—' if session['num_turns'] is None else session['num_turns']}}</dd>
    <dt>Exit code</dt><dd>{{'—' if session['exit_code'] is None else session['exit_code']}}</dd>
  </dl>
  % if session['error']:
  <div class="error-block"><strong>Why it ended {{session['status']}}:</strong><pre>{{session['error']}}</pre></div>
  % end
</section>
% if session['trigger'] == 'manual' and session['prompt_text']:
<section class="card prompt-block">
  <h2>Operator's prompt</h2>
  <pre>{{session['prompt_text']}}</pre>
</section>
% end
% if session['response']:
<section class="card response-block">
  <h2>Final response</h2>
  <div class="response">{{session['response']}}</div>
</section>
% end
</div>
<section class="card">
  <div class="card-head"><h2>Transcript</h2>
  % if session['log_file']:
  <a href="/sessions/{{session['id']}}/log">Raw log</a>
  % end
  </div>
  % if not session['log_file']:
  <p class="notice">This session's log file was deleted after the retention period.</p>
  % elif skipped:
  <p class="notice">{{skipped}} earlier lines are not shown here; the raw log has them all.</p>
  % end
  % if live:
  <div id="transcript" class="transcript" hx-ext="sse" sse-connect="/sessions/{{session['id']}}/stream?after={{after}}" sse-swap="message" hx-swap="beforeend" sse-close="done">
  % else:
  <div id="transcript" class="transcript">
  % end
    % for line in lines:
    {{!line}}
    % end
  </div>
  % if live:
  <div class="live-footer"><span class="pulse"></span>Live: new lines appear as Claude works.
    <span hx-get="/sessions/{{session['id']}}" hx-trigger="htmx:sseClose from:#transcript" hx-select="#session-summary" hx-target="#session-summary" hx-swap="outerHTML"></span>
  </div>
  % elif not lines and session['log_file']:
  <p class="empty">The transcript is empty.</p>
  % end
</section>
