<div class="dashboard">
% for warning in warnings:
<div class="banner banner-warn dashboard-wide" role="alert">{{warning}}</div>
% end
% if dry_run:
<div class="banner banner-info dashboard-wide">Dry run: sessions are told to observe and report, and change nothing.</div>
% end
{{!headline}}

<section class="card run-now">
  <h2>Run now</h2>
  <form class="trigger-form" method="post" action="/sessions/trigger" hx-post="/sessions/trigger" hx-target="#trigger-result" hx-swap="innerHTML" hx-disabled-elt="find button">
    <label for="prompt" class="visually-hidden">Prompt</label>
    <textarea id="prompt" name="prompt" rows="3" placeholder="Describe what you want Claude to check or fix..."></textarea>
    <div class="trigger-actions">
      {{!partial('tier_select', selected=1)}}
      <button type="submit">Run Now</button>
      <div id="trigger-result" aria-live="polite"></div>
    </div>
  </form>
</section>

{{!services}}

{{!sessions}}
</div>
