<ul class="notifications">
% for kind, ok, detail in outcomes:
  <li class="{{'trigger-success' if ok else 'trigger-error'}}">{{kind}}: {{detail}}</li>
% end
</ul>
