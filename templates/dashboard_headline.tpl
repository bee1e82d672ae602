<div id="dashboard-headline" class="live-part" hx-get="/dashboard/headline" hx-trigger="sse:services, sse:session" hx-select="#dashboard-headline > *" hx-swap="innerHTML" hx-disinherit="*">
{{!partial('health_headline', glance=glance, cooldown_problem=cooldown_problem, next_run_at=next_run_at, running_trigger=running_trigger)}}
</div>
