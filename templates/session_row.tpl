<tr>
  <td><a href="/sessions/{{session.id}}">#{{session.id}}</a>
  % if session.parent_id:
  <span class="follow-up-of">↳ follow-up of <a href="/sessions/{{session.parent_id}}">#{{session.parent_id}}</a></span>
  % end
  </td>
  <td>{{!session.started}}</td>
  <td>{{!partial('trigger_badge', session=session)}}</td>
  <td>{{!partial('status_badge', session=session)}}</td>
  <td class="wide-only">{{session.model}}</td>
  <td>{{!session.duration}}</td>
  <td class="wide-only">{{session.cost}}</td>
  <td class="wide-only">{{session.turns}}</td>
</tr>
