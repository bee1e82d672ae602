% if skipped:
<p class="notice" id="hidden-lines"{{!oob}}>{{skipped}} earlier lines are not shown here; the raw log has them all.</p>
% else:
<p class="notice" id="hidden-lines"{{!oob}}>Every line of the transcript is shown.</p>
% end
