<tr class="session-row">
  <td class="summary-cell"><a class="row-id" href="/sessions/{{session.id}}" tabindex="-1" aria-hidden="true">#{{session.id}}</a>
  % if session.parent_id:
  <span class="follow-up-of">↳ follow-up of <a href="/sessions/{{session.parent_id}}">#{{session.parent_id}}</a></span>
  % end
  <a class="row-link" href="/sessions/{{session.id}}">{{session.summary}}</a>
  </td>
  <td>{{!session.started}}</td>
  <td>{{!partial('trigger_badge', session=session)}}</td>
  <td>{{!partial('status_badge', session=session)}}</td>
  <td class="wide-only">{{session.model}}</td>
  <td class="wide-only">{{!session.duration}}</td>
  <td class="wide-only">{{session.cost}}</td>
  <td class="wide-only">{{session.turns}}</td>
</tr>
