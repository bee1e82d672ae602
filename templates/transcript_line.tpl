<div class="line line-{{entries[0].kind}}" data-line="{{number}}">\\
% if at:
<span class="at">{{at}}</span>\\
% end
% for entry in entries:
<div class="entry entry-{{entry.kind}}"><span class="label">{{entry.label}}</span>\\
% if entry.fold:
<details class="text fold"><summary><span class="fold-preview">{{entry.text}}</span> <span class="fold-size">{{entry.fold.size}}</span></summary><pre tabindex="0">{{entry.fold.text}}</pre>\\
% if entry.fold.rest:
<p class="fold-rest">{{entry.fold.rest}}</p>\\
% end
</details>\\
% elif entry.html is not None:
<div class="text markdown">{{!entry.html}}</div>\\
% else:
<span class="text">{{entry.text}}</span>\\
% end
</div>\\
% end
</div>
