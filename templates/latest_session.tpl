% if session is None:
<p class="empty">{{empty}}</p>
% else:
<a class="latest" href="/sessions/{{session.id}}">
  <span class="latest-title">#{{session.id}}
    {{!partial('trigger_badge', session=session)}}
    {{!partial('status_badge', session=session)}}
  </span>
  <span class="latest-meta">{{!session.started}} · {{!session.duration}} · {{session.cost}}</span>
</a>
% if session.error:
<p class="latest-why">{{session.why or 'Error'}}:</p>
<div class="latest-summary">{{!summary_html(session.error)}}</div>
% end
% if session.response_html:
<div class="response-fold" tabindex="0" role="region" aria-label="Response of session {{session.id}}">{{!partial('response', session=session)}}</div>
% elif not session.error:
<div class="latest-summary">{{!summary_html(session.findings)}}</div>
% end
% end
