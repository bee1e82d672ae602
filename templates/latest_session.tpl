% if session is None:
<p class="empty">{{empty}}</p>
% else:
<a class="latest" href="/sessions/{{session.id}}">
  <span class="latest-title">#{{session.id}}
    {{!partial('trigger_badge', session=session)}}
    {{!partial('status_badge', session=session)}}
  </span>
  <span class="latest-meta">{{!session.started}} · {{session.duration}} · {{session.cost}}</span>
</a>
% if session.error:
<p class="latest-why">{{session.why or 'Error'}}:</p>
% end
<div class="latest-summary">{{!summary_html(session.findings)}}</div>
% end
