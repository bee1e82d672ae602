<span id="running-pill" class="running-pill-slot" hx-get="/running-pill" hx-trigger="sse:session" hx-select="#running-pill > *" hx-swap="innerHTML" hx-disinherit="*">
  % if running_session_id:
  <a class="running-pill" href="/sessions/{{running_session_id}}"><span class="pulse"></span>Session {{running_session_id}} running</a>
  % end
</span>
