<div class="response markdown">{{!session.response_html}}</div>
