% if ok and session_id:
<div class="trigger-result trigger-success">{{message}}</div>
% elif ok:
<div class="trigger-result trigger-success">Session triggered. It will show in <a href="/sessions">Sessions</a> in a moment.</div>
% else:
<div class="trigger-result trigger-error">{{message}}</div>
% end
