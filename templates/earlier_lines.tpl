% if skipped:
<div class="earlier-lines" id="earlier-lines"><button type="button" class="button-quiet" hx-get="/sessions/{{session_id}}/lines?before={{skipped + 1}}" hx-target="#earlier-lines" hx-swap="outerHTML">Show earlier lines</button></div>
% end
