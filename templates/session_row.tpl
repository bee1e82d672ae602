<tr>
  <td><a href="/sessions/{{session.id}}">#{{session.id}}</a></td>
  <td>{{!session.started}}</td>
  <td>{{!partial('trigger_badge', session=session)}}</td>
  <td>{{!partial('status_badge', session=session)}}</td>
  <td class="wide-only">{{session.model}}</td>
  <td>{{session.duration}}</td>
  <td class="wide-only">{{session.cost}}</td>
  <td class="wide-only">{{session.turns}}</td>
</tr>
