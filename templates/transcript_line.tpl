<div class="line line-{{entries[0][0]}}" data-line="{{number}}">\\
% if at:
<span class="at">{{at}}</span>\\
% end
% for kind, label, text in entries:
<div class="entry entry-{{kind}}"><span class="label">{{label}}</span><span class="text">{{text}}</span></div>\\
% end
</div>
