<section class="card headline headline-{{glance.worst or 'none'}}" id="headline">
  % if glance.tiles:
  <h1>{{glance.counted}}<span class="checked"><span class="separator"> · </span>{{!('checked ' + ago_time(glance.last_checked)) if glance.last_checked else 'not checked yet'}}</span></h1>
  % if glance.stale_count:
  <p class="stale-note">{{plural(glance.stale_count, 'service')}} not checked within two intervals ({{stale_after}}): marked stale below.</p>
  % end
  % elif cooldown_problem:
  <h1>Service health unknown</h1>
  <p class="hint">cooldown.json cannot be used; the services card says why.</p>
  % else:
  <h1>No services recorded yet</h1>
  % end
  <p class="next-run">Next scheduled check:
  % if next_run_at is not None:
  {{!local_time(next_run_at)}} <span class="hint">· every {{interval}} after the last one ends</span>
  % elif running_trigger == 'scheduled':
  {{interval}} after the running session ends.
  % else:
  right after the running session ends.
  % end
  </p>
</section>
