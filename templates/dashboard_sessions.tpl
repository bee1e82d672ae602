<div id="dashboard-sessions" class="live-part" hx-get="/dashboard/sessions" hx-trigger="sse:session" hx-select="#dashboard-sessions > *" hx-swap="innerHTML" hx-disinherit="*">
<section class="card latest-check">
  <div class="card-head"><h2>Last health check</h2><a href="/sessions">All sessions</a></div>
  {{!partial('latest_session', session=check, empty='No scheduled health check yet.')}}
</section>

<section class="card latest-other">
  <div class="card-head"><h2>Latest other session</h2></div>
  {{!partial('latest_session', session=other, empty='No manual or alert session yet.')}}
</section>

{{!partial('stats', stats=stats, session_bars=session_bars, cost_bars=cost_bars)}}
</div>
