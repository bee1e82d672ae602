<span class="health-badge health-{{service.health}}">{{service.status}}</span>\\
