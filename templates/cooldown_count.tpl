<span class="{{'limit' if count >= limit.limit else ''}}">{{count}} / {{limit.limit}}</span>\\
