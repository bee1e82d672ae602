<div class="session-actions">
  % if session.running:
  <form method="post" action="/sessions/{{session.id}}/stop" hx-post="/sessions/{{session.id}}/stop" hx-target="#action-result" hx-swap="innerHTML" hx-disabled-elt="find button" hx-confirm="Stop session {{session.id}}? The agent is stopped at once, whatever it is doing.">
    <button type="submit" class="button-stop">Stop</button>
  </form>
  % else:
  <form method="post" action="/sessions/{{session.id}}/rerun" hx-post="/sessions/{{session.id}}/rerun" hx-target="#action-result" hx-swap="innerHTML" hx-disabled-elt="find button">
    <button type="submit" class="button-quiet">Re-run</button>
  </form>
  % end
  <div id="action-result" aria-live="polite"></div>
</div>
% if session.can_continue:
<form class="trigger-form continue-form" method="post" action="/sessions/{{session.id}}/followup" hx-post="/sessions/{{session.id}}/followup" hx-target="#continue-result" hx-swap="innerHTML" hx-disabled-elt="find button">
  <h2><label for="follow-up-prompt">Continue this session</label></h2>
  <textarea id="follow-up-prompt" name="prompt" rows="3" placeholder="What should Claude do next? For example: restart it."></textarea>
  <div class="trigger-actions">
    {{!partial('tier_select', selected=min(session.tier, len(tier_choices)))}}
    <button type="submit">Continue</button>
    <div id="continue-result" aria-live="polite"></div>
  </div>
</form>
% end
