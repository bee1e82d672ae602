<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<meta name="htmx-config" content='{"includeIndicatorStyles": false, "responseHandling": [{"code": "204", "swap": false}, {"code": "[23]..", "swap": true}, {"code": "400|409|413|503", "swap": true}, {"code": "[45]..", "swap": false, "error": true}]}'>
<title>{{title}} · claude-ops</title>
<link rel="stylesheet" href="/static/style.css">
<link rel="icon" href="/static/icon.svg" type="image/svg+xml">
<link rel="apple-touch-icon" href="/static/icon-192.png">
<link rel="manifest" href="/manifest.webmanifest" crossorigin="use-credentials">
<meta name="theme-color" content="#ffffff" media="(prefers-color-scheme: light)">
<meta name="theme-color" content="#201f1d" media="(prefers-color-scheme: dark)">
<script src="/static/htmx-2.0.11.min.js" defer></script>
<script src="/static/htmx-ext-sse-2.2.4.min.js" defer></script>
<script src="/static/app.js" defer></script>
</head>
<body hx-ext="sse" sse-connect="/events?since={{events_id}}">
<header class="topbar">
  <a class="brand" href="/"><img src="/static/icon.svg" alt="" width="22" height="22">claude-ops</a>
  <nav>
    <a href="/">Dashboard</a>
    <a href="/sessions">Sessions</a>
    <a href="/cooldowns">Cooldowns</a>
    <a href="/settings">Settings</a>
  </nav>
  {{!partial('running_pill', running_session_id=running_session_id)}}
</header>
<main>
{{!body}}
</main>
</body>
</html>
