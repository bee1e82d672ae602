<g class="day"><title>{{day.label}}</title>\\
% for bar in bars:
<rect class="bar-{{bar.kind}}" x="{{bar.x}}" y="{{bar.y}}" width="{{bar.width}}" height="{{bar.height}}"/>\\
% end
</g>
