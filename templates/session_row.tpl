<tr>
  <td><a href="/sessions/{{session['id']}}">#{{session['id']}}</a></td>
  <td>{{!local_time(session['started_at'])}}</td>
  <td><span class="trigger-badge trigger-badge-{{session['trigger']}}">{{session['trigger']}}</span></td>
  <td><span class="status-badge status-{{session['status']}}">{{session['status']}}</span></td>
  <td class="wide-only">{{session['model']}}</td>
  <td>{{duration(session)}}</td>
  <td class="wide-only">{{cost(session)}}</td>
  <td class="wide-only">{{'—' if session['num_turns'] is None else session['num_turns']}}</td>
</tr>
