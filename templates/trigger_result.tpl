% if ok and session_id:
<div class="trigger-result trigger-success">{{message}}</div>
% elif ok:
<div class="trigger-result trigger-success">Session triggered. It will show in <a href="/sessions">Sessions</a> in a moment.</div>
% elif get('running_session_id'):
<div class="trigger-result trigger-error">{{message}} <a href="/sessions/{{running_session_id}}">Session {{running_session_id}} is running.</a></div>
% else:
<div class="trigger-result trigger-error">{{message}}</div>
% end
