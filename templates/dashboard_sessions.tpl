<div id="dashboard-sessions" class="live-part" hx-get="/dashboard/sessions" hx-trigger="sse:session" hx-select="#dashboard-sessions > *" hx-swap="innerHTML" hx-disinherit="*">
<section class="card latest-check">
  <div class="card-head"><h2>Last health check</h2><a href="/sessions">All sessions</a></div>
  {{!check}}
</section>

<section class="card latest-other">
  <div class="card-head"><h2>Latest other session</h2></div>
  {{!other}}
</section>

{{!stats}}
</div>
