<div id="dashboard-services" class="live-part" hx-get="/dashboard/services" hx-trigger="sse:services" hx-select="#dashboard-services > *" hx-swap="innerHTML" hx-disinherit="*">
{{!partial('service_grid', glance=glance, cooldown_problem=cooldown_problem)}}
</div>
