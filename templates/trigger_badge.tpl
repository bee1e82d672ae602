<span class="trigger-badge trigger-badge-{{session.trigger}}">{{session.trigger}}</span>\\
