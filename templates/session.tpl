{{!partial('session_summary', session=session, notifications=notifications)}}
% if alerts:
<section class="card alerts-block">
  <h2>Alerts it looked into</h2>
  % for alert in alerts:
  <details>
    <summary><strong>{{alert['monitor']}}</strong> · {{alert['source']}} · {{alert['message']}} · {{plural(alert['times'], 'time')}} since {{!local_time(alert['received_at'])}}</summary>
    <pre>{{alert['payload']}}</pre>
  </details>
  % end
</section>
% end
<section class="card">
  <div class="card-head"><h2>Transcript</h2>
  % if session.has_log:
  <span class="transcript-files"><a href="/sessions/{{session.id}}/transcript.txt">As text</a> · <a href="/sessions/{{session.id}}/log">Raw log (JSON lines)</a></span>
  % end
  </div>
  % if not session.has_log:
  <p class="notice">This session's log file was deleted after the retention period.</p>
  % elif skipped:
  {{!partial('hidden_lines', skipped=skipped, oob='')}}
  % end
  % if live:
  <div id="transcript" class="transcript" tabindex="0" role="region" aria-label="Transcript" hx-ext="sse" sse-connect="/sessions/{{session.id}}/stream?after={{after}}" sse-swap="message" hx-swap="beforeend" sse-close="done">
  % else:
  <div id="transcript" class="transcript" tabindex="0" role="region" aria-label="Transcript">
  % end
    {{!partial('earlier_lines', session_id=session.id, skipped=skipped)}}
    % for line in lines:
    {{!line}}
    % end
  </div>
  % if live:
  <div class="live-footer" hx-get="/sessions/{{session.id}}/summary" hx-trigger="htmx:sseClose from:#transcript" hx-swap="delete" hx-select-oob="#session-summary"><span class="pulse"></span>Live: new lines appear as Claude works.</div>
  % elif not lines and session.has_log:
  <p class="empty">The transcript is empty.</p>
  % end
</section>
