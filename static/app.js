// Small behaviours htmx does not cover: local and relative times, the running time of a running
// session, and a live transcript that follows its end.
(function () {
  "use strict";
  // Short enough for a phone's table cell; the year only when it is not this one.
  var thisYear = new Intl.DateTimeFormat(undefined, {
    month: "short", day: "numeric", hour: "numeric", minute: "2-digit"
  });
  var otherYear = new Intl.DateTimeFormat(undefined, {
    year: "numeric", month: "short", day: "numeric", hour: "numeric", minute: "2-digit"
  });

  function showLocalTimes(root) {
    var year = new Date().getFullYear();
    root.querySelectorAll("time[datetime]:not([data-ago])").forEach(function (element) {
      var moment = new Date(element.getAttribute("datetime"));
      if (!isNaN(moment)) {
        element.textContent = (moment.getFullYear() === year ? thisYear : otherYear).format(moment);
        element.title = moment.toString();
      }
    });
  }

  // "4 min ago", as claude_ops.ago_text says it, kept current while the page stays open.
  function agoText(seconds) {
    if (seconds < 60) return "just now";
    if (seconds >= 86400) {
      var days = Math.floor(seconds / 86400);
      return days + (days === 1 ? " day ago" : " days ago");
    }
    return seconds >= 3600 ? Math.floor(seconds / 3600) + " h ago" : Math.floor(seconds / 60) + " min ago";
  }

  function showAgoTimes(root) {
    var now = Date.now();
    root.querySelectorAll("time[data-ago]").forEach(function (element) {
      var moment = new Date(element.getAttribute("datetime"));
      if (!isNaN(moment)) {
        element.textContent = agoText(Math.max(0, (now - moment) / 1000));
        element.title = moment.toString();
      }
    });
  }
  // A running session's time so far, counted on from its start each second, in the words the
  // server's fallback text uses (claude_ops.elapsed_text): "42 s", "3 min 5 s", "1 h 4 min".
  function elapsedText(seconds) {
    if (seconds < 60) return seconds + " s";
    var minutes = Math.floor(seconds / 60);
    if (minutes < 60) return minutes + " min " + (seconds % 60) + " s";
    return Math.floor(minutes / 60) + " h " + (minutes % 60) + " min";
  }

  function showElapsed() {
    document.querySelectorAll(".elapsed[data-since]").forEach(function (element) {
      var since = Date.parse(element.getAttribute("data-since"));
      if (!isNaN(since)) {
        element.textContent = elapsedText(Math.max(0, Math.floor((Date.now() - since) / 1000)));
      }
    });
  }
  setInterval(showElapsed, 1000);

  // Follow the end of a live transcript unless the reader has scrolled away from it: whether to
  // follow is decided as each line arrives, from where the reader is at that moment.
  var following = false;
  function nearEnd(box) {
    return box.scrollHeight - box.scrollTop - box.clientHeight < 40;
  }

  document.addEventListener("DOMContentLoaded", function () {
    showLocalTimes(document);
    showAgoTimes(document);
    setInterval(function () { showAgoTimes(document); }, 30000);
    showElapsed();
    var box = document.getElementById("transcript");
    if (box && box.hasAttribute("sse-connect")) box.scrollTop = box.scrollHeight;
  });
  document.addEventListener("htmx:afterSwap", function (event) {
    showLocalTimes(event.target);
    showAgoTimes(event.target);
    showElapsed();
  });
  document.addEventListener("htmx:sseBeforeMessage", function (event) {
    following = nearEnd(event.target);
  });
  document.addEventListener("htmx:sseMessage", function (event) {
    if (following) event.target.scrollTop = event.target.scrollHeight;
  });
})();
