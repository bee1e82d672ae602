% # In ASCII (&middot;, not the character): this card is most of the dashboard's bytes, and a
% # character past ASCII makes the encoding of the page that holds it several times slower.
<section class="card stats" id="stats">
  <div class="card-head"><h2>Last 30 days</h2><a href="/api/v1/stats">As JSON</a></div>
  <dl class="stats-totals">
    <div><dt>Sessions today</dt><dd>{{stats.today.sessions}}</dd></div>
    <div><dt>Sessions, 30 days</dt><dd>{{stats.sessions}}</dd></div>
    <div><dt>Failures, 30 days</dt><dd>{{stats.failures}}</dd></div>
    <div><dt>Success rate</dt><dd>{{stats.success_rate_text}}</dd></div>
    <div><dt>Cost today</dt><dd>{{cost_text(stats.today.cost_usd)}}</dd></div>
    <div><dt>Cost, 30 days</dt><dd>{{cost_text(stats.cost_usd)}}</dd></div>
  </dl>
  <div class="charts">
    <figure class="chart">
      <figcaption>Sessions a day, by status <span class="hint">&middot; busiest day {{stats.busiest}}</span></figcaption>
      <svg class="chart-sessions" viewBox="{{chart_viewbox}}" preserveAspectRatio="none" role="img" aria-labelledby="sessions-chart-title">
        <title id="sessions-chart-title">Sessions a day over the last 30 days, stacked by status. {{stats.summary}}</title>
        % for day, bars in session_bars:
        {{!partial('chart_day', day=day, bars=bars)}}
        % end
      </svg>
      <div class="chart-axis"><span>{{stats.days[0].day}}</span><span>today</span></div>
      <ul class="chart-legend">
        % for status, label in stats.legend:
        <li><span class="swatch bar-{{status}}"></span>{{label}}</li>
        % end
      </ul>
    </figure>
    <figure class="chart">
      <figcaption>Cost a day <span class="hint">&middot; dearest day {{cost_text(stats.dearest)}}</span></figcaption>
      <svg class="chart-cost" viewBox="{{chart_viewbox}}" preserveAspectRatio="none" role="img" aria-labelledby="cost-chart-title">
        <title id="cost-chart-title">Cost a day over the last 30 days: {{cost_text(stats.cost_usd)}} in all, {{cost_text(stats.today.cost_usd)}} today.</title>
        % for day, bars in cost_bars:
        {{!partial('chart_day', day=day, bars=bars)}}
        % end
      </svg>
      <div class="chart-axis"><span>{{stats.days[0].day}}</span><span>today</span></div>
    </figure>
  </div>
  <p class="stats-summary">{{stats.summary}}</p>
</section>
