<span class="status-badge status-{{session.status}}">{{session.status_label}}</span>\\
