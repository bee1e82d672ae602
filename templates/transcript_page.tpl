{{!partial('hidden_lines', skipped=skipped, oob=' hx-swap-oob="true"')}}
{{!partial('earlier_lines', session_id=session_id, skipped=skipped)}}
% for line in lines:
{{!line}}
% end
