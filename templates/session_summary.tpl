<div id="session-summary">
<section class="card">
  <div class="card-head">
    <h1>Session #{{session.id}}</h1>
    <span>{{!partial('trigger_badge', session=session)}} {{!partial('status_badge', session=session)}}</span>
  </div>
  <dl class="meta">
    <dt>Trigger</dt><dd>{{session.trigger}}</dd>
    <dt>Status</dt><dd>{{session.status_label}}</dd>
    <dt>Tier</dt><dd>{{session.tier}}</dd>
    <dt>Model</dt><dd>{{session.model}}</dd>
    % if session.parent_id:
    <dt>Follow-up of</dt><dd><a href="/sessions/{{session.parent_id}}">Session #{{session.parent_id}}</a></dd>
    % end
    % if session.follow_ups:
    <dt>Follow-ups</dt><dd class="follow-ups">
      % for follow_up in session.follow_ups:
      <a href="/sessions/{{follow_up['id']}}">#{{follow_up['id']}}</a>
      % end
    </dd>
    % end
    <dt>Prompt</dt><dd>{{session.prompt_file}}</dd>
    <dt>Started</dt><dd>{{!session.started}}</dd>
    <dt>Ended</dt><dd>{{!session.ended}}</dd>
    <dt>Duration</dt><dd>{{!session.duration}}</dd>
    <dt>Cost</dt><dd>{{session.cost}}{{' · the conversation so far: ' + session.conversation_cost if session.conversation_cost else ''}}</dd>
    <dt>Turns</dt><dd>{{session.turns}}</dd>
    <dt>Exit code</dt><dd>{{session.exit_code}}</dd>
  </dl>
  % if session.error:
  <div class="error-block"><strong>{{session.why}}:</strong><pre>{{session.error}}</pre></div>
  % end
  % if notifications:
  <h2>Notified</h2>
  <ul class="notifications">
    % for sent in notifications:
    <li class="{{'trigger-success' if sent['ok'] else 'trigger-error'}}">{{sent['event']}} → {{sent['target']}}: {{sent['detail']}} · {{!local_time(sent['sent_at'])}}</li>
    % end
  </ul>
  % end
  {{!partial('session_actions', session=session)}}
</section>
% if session.operator_prompt:
<section class="card prompt-block">
  <h2>Operator's prompt</h2>
  <pre>{{session.operator_prompt}}</pre>
</section>
% end
% if session.response_html:
<section class="card response-block" id="response">
  <h2>Final response</h2>
  {{!partial('response', session=session)}}
</section>
% end
</div>
